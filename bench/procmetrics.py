"""CPU time and resident memory of a server's process tree, read from /proc.

cargobay may run several worker processes (`--workers`), registry:2 runs one Go
process with many threads; both are measured the same way: every process
descending from the one we started. /proc/PID/stat's utime+stime covers all of a
process's threads; cutime+cstime of the root adds children that already exited
and were reaped, so a worker that died mid-run still counts.

RSS is sampled (a few times a second) during a workload, because the sum over
processes at one instant is what the machine must hold; per-process peaks are
reported too, since issue 5's memory target is per worker process.
"""

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_SECONDS = 0.1


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, over all its threads (a thread may be the one that forked)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        found.extend(int(child) for child in text.split())
    return found


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants (bounded: a tree of more than 4096 is cut off)."""
    tree: list[int] = []
    pending = [root]
    while pending and len(tree) < 4096:
        pid = pending.pop()
        if not Path(f"/proc/{pid}").exists():
            continue
        tree.append(pid)
        pending.extend(_children(pid))
    return tree


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, *, with_reaped_children: bool) -> float:
    """utime+stime of `pid` (all threads), plus cutime+cstime when asked."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # after the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17); index = field - 3
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by the tree under `root`, including reaped children."""
    return sum(cpu_seconds(pid, with_reaped_children=pid == root) for pid in process_tree(root))


def rss_bytes(pid: int) -> int:
    """Resident set size from /proc/PID/statm (cheaper to parse than status)."""
    try:
        text = Path(f"/proc/{pid}/statm").read_text()
    except OSError:
        return 0
    return int(text.split()[1]) * PAGE_SIZE


@dataclass
class TreeUsage:
    """What a sampler saw: peak of the sum over processes, and peak of any one process."""

    peak_total_rss: int = 0
    peak_process_rss: int = 0
    max_processes: int = 0
    samples: int = 0
    per_process_peak: dict[int, int] = field(default_factory=dict)


class TreeSampler:
    """Samples the RSS of a process tree in a background thread until stopped.

    A thread rather than a process: it sleeps almost all the time, and reading a few
    /proc files costs microseconds, so it does not compete with the workload.
    """

    def __init__(self, root: int, interval: float = SAMPLE_SECONDS) -> None:
        self.root = root
        self.interval = interval
        self.usage = TreeUsage()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-sampler-{root}", daemon=True)

    def start(self) -> "TreeSampler":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> TreeUsage:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()
        return self.usage

    def sample(self) -> None:
        pids = process_tree(self.root)
        sizes = {pid: rss_bytes(pid) for pid in pids}
        usage = self.usage
        usage.samples += 1
        usage.max_processes = max(usage.max_processes, len(pids))
        usage.peak_total_rss = max(usage.peak_total_rss, sum(sizes.values()))
        for pid, size in sizes.items():
            usage.per_process_peak[pid] = max(usage.per_process_peak.get(pid, 0), size)
            usage.peak_process_rss = max(usage.peak_process_rss, size)

    def _run(self) -> None:
        # bounded by the stop event and by a day of samples at most
        for _ in range(int(86_400 / self.interval)):
            if self._stop.wait(self.interval):
                return
            self.sample()


def wait_for_exit(pid: int, seconds: float) -> bool:
    """True when `pid` is gone (or a zombie) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fields = _stat_fields(pid)
        if fields is None or fields[0] == "Z":
            return True
        time.sleep(0.05)
    return False
