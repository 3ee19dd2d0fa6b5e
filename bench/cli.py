"""`python -m bench`: the whole run, in order, cleaned up whatever happens.

1. the machine's limits (before any server runs, so nothing competes);
2. for cargobay, then registry:2, each in a fresh directory with the same htpasswd:
   push-large (monolithic, then chunked), pull-large (the blobs just pushed),
   small with auth, ci-mix; then, untimed, verify: every blob push-large pushed and
   every image ci-mix pushed read back and hashed; then a second server without
   auth for small;
3. one table on stdout, the JSON beside it; exit 1 if any request failed verification.

Servers are stopped and the temporary directories (several GiB) removed in `finally`
blocks; SIGTERM is turned into an exception so that they run then too.
"""

import argparse
import asyncio
import datetime
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from bench import machine, report, servers
from bench.harness import HarnessError
from bench.plan import FULL, QUICK, Plan
from bench.runner import Measured, run_workload, target_of
from bench.servers import CARGOBAY, LABELS, REGISTRY2, Server, ServerError
from bench.workloads import ci_mix, small
from bench.workloads.base import Workload
from bench.workloads.large import CHUNKED, MONOLITHIC, PullLarge, PushLarge
from bench.workloads.verify import Verify

DEFAULT_OUT = Path(__file__).parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="cargobay against registry:2 side by side: push-large, pull-large, small, ci-mix "
        "(issue 5), with the machine's limits, in one table.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and short windows: a smoke run")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="pass `--workers N` to `cargobay serve` (default: cargobay's own default)",
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=2 * (os.cpu_count() or 1),
        metavar="N",
        help="client processes to spread the clients over (default: two per core, so that none saturates)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"the JSON file (default: {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--tmpdir", type=Path, default=None, help="where the temporary data directories go (default: $TMPDIR)"
    )
    parser.add_argument(
        "--only",
        choices=[CARGOBAY, REGISTRY2],
        default=None,
        help=argparse.SUPPRESS,  # for profiling one side; the table then has one column empty
    )
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.client_processes < 1:
        parser.error("--client-processes must be at least 1")
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    signal.signal(signal.SIGTERM, _terminate)
    began = time.monotonic()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    base = Path(tempfile.mkdtemp(prefix="cargobay-bench-", dir=args.tmpdir))
    try:
        servers.registry2_binary()  # fail now, not after the first server's run
        workers_supported = servers.cargobay_has_workers_option()
        if args.workers is not None and not workers_supported:
            raise ServerError("--workers given, but this cargobay's `serve` has no --workers option")
        say(f"bench: temporary data in {base}; measuring the machine's limits")
        limits = machine.measure(base, plan.sha256_bytes, plan.tcp_bytes, plan.write_bytes).as_dict()
        say(
            "bench: sha256 {sha256_mb_s:.0f} MB/s, loopback TCP {loopback_tcp_mb_s:.0f} MB/s, "
            "storage write {storage_write_mb_s:.0f} MB/s".format(**limits)
        )
        htpasswd = base / "htpasswd"
        servers.write_htpasswd(htpasswd)
        versions = servers.versions()
        results_by_server: dict[str, dict[str, Any]] = {}
        for kind in (CARGOBAY, REGISTRY2):
            if args.only and kind != args.only:
                results_by_server[kind] = {"version": versions[kind], "processes": 0, "workloads": {}}
                continue
            workloads, processes = run_server(kind, base / kind, htpasswd, plan, args)
            results_by_server[kind] = {
                "version": versions[kind],
                "processes": processes,
                "workloads": workloads,
            }
        results: dict[str, Any] = {
            "benchmark": "cargobay vs registry:2 (issue 5)",
            "started_at": started_at,
            "duration_s": time.monotonic() - began,
            "quick": args.quick,
            "machine": {**limits, "kernel": platform.release(), "python": platform.python_version()},
            "settings": {
                "client_processes": args.client_processes,
                "cargobay_workers": args.workers if args.workers is not None else "default",
                "cargobay_has_workers_option": workers_supported,
                "logging": "both servers at their defaults: level info, access log on",
                "htpasswd": f"one file for both, bcrypt cost {servers.HTPASSWD_COST}",
                "plan": plan.as_dict(),
            },
            "servers": results_by_server,
        }
        results["figures"] = report.figures(results_by_server, limits)
        results["machine_bound"] = {
            kind: [name for name, record in server["workloads"].items() if record["machine_load"]["bound"]]
            for kind, server in results_by_server.items()
        }
        results["errors"] = sum(
            record["errors"]
            for server in results_by_server.values()
            for record in server["workloads"].values()
        )
        report.write_json(results, args.out)
        print(report.render(results))
        say(f"bench: {results['errors']} errors; JSON in {args.out}; {results['duration_s']:.0f} s in all")
        return 1 if results["errors"] else 0
    except (ServerError, HarnessError) as error:
        say(f"bench: failed: {error}")
        return 2
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_server(
    kind: str, workdir: Path, htpasswd: Path, plan: Plan, args: argparse.Namespace
) -> tuple[dict[str, Any], int]:
    """Every workload against one kind of server; returns the records and the most processes seen."""
    records: dict[str, Any] = {}
    processes = 0

    def measure(server: Server, key: str, workload: Workload, duration: float = 0.0) -> Measured:
        nonlocal processes
        say(f"bench: {LABELS[kind]}: {key} ...")
        measured = run_workload(
            server,
            workload,
            client_processes=args.client_processes,
            duration=duration,
            request_timeout=plan.request_timeout_seconds,
            workload_timeout=plan.workload_timeout_seconds,
        )
        record = measured.record
        records[key] = record
        processes = max(processes, record["server"]["processes"])
        load = record["machine_load"]
        bound = (
            f", machine-bound ({load['cores_busy']:.2f} of {load['cores']} cores)" if load["bound"] else ""
        )
        say(
            f"bench: {LABELS[kind]}: {key}: {record['mb_s']:.0f} MB/s, "
            f"{sum(record['operations'].values())} operations in {record['wall_s']:.1f} s{bound}, "
            f"{record['errors']} errors {record['error_messages'][:2] if record['errors'] else ''}"
        )
        return measured

    server = servers.start(kind, workdir / "auth", htpasswd, args.workers)
    try:
        target = target_of(server, plan.request_timeout_seconds)
        sizes = (plan.large_clients, plan.large_blob_bytes, plan.large_chunk_bytes)
        pushed = measure(server, "push-large-monolithic", PushLarge(MONOLITHIC, *sizes)).blobs
        pushed += measure(server, "push-large-chunked", PushLarge(CHUNKED, *sizes)).blobs
        if pushed:
            blobs = [pushed[i % len(pushed)] for i in range(plan.large_clients)]
            measure(server, "pull-large", PullLarge(blobs))
        reads = asyncio.run(small.seed(target, plan.small_clients))
        measure(server, "small-auth", reads, plan.small_seconds)
        say(f"bench: {LABELS[kind]}: seeding ci-mix ...")
        mix = asyncio.run(ci_mix.seed(target, plan))
        images = measure(server, "ci-mix", mix, plan.mix_seconds).images
        if pushed or images:  # untimed; after every timed workload, so that none of them lost a byte
            measure(server, "verify", Verify.of([*pushed, *images], plan.verify_clients))
    finally:
        server.stop()
        shutil.rmtree(workdir / "auth", ignore_errors=True)

    server = servers.start(kind, workdir / "open", None, args.workers)
    try:
        reads = asyncio.run(small.seed(target_of(server, plan.request_timeout_seconds), plan.small_clients))
        measure(server, "small-noauth", reads, plan.small_seconds)
    finally:
        server.stop()
        shutil.rmtree(workdir / "open", ignore_errors=True)
    return records, processes
