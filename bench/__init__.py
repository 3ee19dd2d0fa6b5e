"""cargobay against registry:2, side by side, in one run on one machine (issue 5).

`python -m bench` (or `make bench`) measures the machine's limits, then starts each
server in a fresh temporary directory with equivalent settings, drives the same
workloads against each in turn from client processes, verifies every response and
every byte, and prints one table with both figures and their ratio.

Choices that keep the comparison fair, and why:
  - both servers get the same config shape, htpasswd file and default logging, and
    run the same workloads with the same bytes (content is deterministic);
  - `os.sync()` before every workload: on a small VM the kernel's writeback of the
    previous workload's gigabytes otherwise runs (and takes CPU) during the next;
  - clients are spread over two processes per core and their CPU is reported, so a
    figure limited by the load generator shows as such; so does one where clients
    and server together kept the machine's cores busy;
  - after the timed workloads, an untimed pass reads back and hashes every blob and
    image they pushed: a push acknowledged but stored wrong counts as an error;
  - data is made and digested before the start signal; only HTTP is timed.

Modules, one job each:
  plan        the sizes and durations of a full run and of a `--quick` smoke run
  servers     start and stop cargobay and registry:2 with equivalent configurations
  procmetrics CPU seconds and RSS of a server's process tree, read from /proc
  machine     the hardware's limits: sha256 on one core, loopback TCP, page-cache writes
  content     deterministic blob and image bytes whose digests cost (almost) nothing
  api         the registry HTTP calls the workloads make, each one verified
  harness     client processes: spread the clients, start them together, collect results
  workloads/  push-large, pull-large, small, ci-mix: what one client does; verify: the read-back
  runner      one workload against one server: harness + server metrics -> one record
  report      the table and the JSON
  cli         the command line and the order of the whole run
"""
