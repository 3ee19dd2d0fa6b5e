"""Client processes: spread a workload's clients over them, start them together, collect.

One Python process can only use one core, and an HTTP client at GB/s (or at
thousands of requests per second) needs most of one, so the clients of a workload
are spread round-robin over several processes (spawned, not forked: the parent has
threads). Each process prepares its data, reports ready, waits for the common start
signal, runs its clients concurrently on one event loop, and reports its results
with its own CPU seconds and wall seconds: CPU/wall close to 1 means that process
saturated a core and the figure may be the client's limit rather than the server's.
"""

import asyncio
import multiprocessing
import multiprocessing.connection
import resource
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from typing import Any

from bench.workloads.base import ClientResult, Target, Workload

READY_SECONDS = 120.0  # spawning, importing and making data (256 MiB of it per process at most)
SATURATED = 0.9  # CPU seconds per wall second above which a client process counts as saturated


class HarnessError(RuntimeError):
    """A client process failed outside the workload's own error accounting, or timed out."""


@dataclass
class ProcessResult:
    index: int
    clients: list[ClientResult]
    cpu_seconds: float
    wall_seconds: float
    max_rss_bytes: int

    @property
    def cpu_per_wall(self) -> float:
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass
class HarnessResult:
    processes: list[ProcessResult]
    go_at: float
    done_at: float

    @property
    def clients(self) -> list[ClientResult]:
        return [client for process in self.processes for client in process.clients]


def spread(clients: int, processes: int) -> list[list[int]]:
    """Client indices per process, round-robin; never an empty process."""
    count = max(1, min(processes, clients))
    return [list(range(p, clients, count)) for p in range(count)]


def _client_process(
    index: int,
    workload: Workload,
    target: Target,
    clients: list[int],
    duration: float,
    conn: multiprocessing.connection.Connection,
    go: Event,
) -> None:
    """The body of one client process (module-level: spawn imports it by name)."""
    try:
        workload.prepare(clients)
        conn.send(("ready", None))
        if not go.wait(READY_SECONDS):
            conn.send(("error", "no start signal"))
            return
        cpu0, wall0 = time.process_time(), time.monotonic()
        deadline = wall0 + duration
        results = asyncio.run(_run_clients(workload, target, clients, deadline))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        conn.send(("done", ProcessResult(index, results, cpu, wall, max_rss)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


async def _run_clients(
    workload: Workload, target: Target, clients: list[int], deadline: float
) -> list[ClientResult]:
    return list(await asyncio.gather(*(workload.run(client, target, deadline) for client in clients)))


def run_clients(
    workload: Workload,
    target: Target,
    processes: int,
    duration: float,
    timeout: float,
    on_start: Callable[[], Any],
    on_done: Callable[[], Any],
) -> HarnessResult:
    """Run `workload` over `processes` client processes; `on_start`/`on_done` bracket the window.

    `duration` is the window of duration-bound workloads (0 for count-bound ones);
    `timeout` bounds the whole window: past it the processes are terminated and the
    run fails.
    """
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    started: list[tuple[SpawnProcess, multiprocessing.connection.Connection]] = []
    try:
        for index, clients in enumerate(spread(workload.clients, processes)):
            parent_end, child_end = context.Pipe(duplex=False)
            process = context.Process(
                target=_client_process,
                args=(index, workload, target, clients, duration, child_end, go),
                name=f"bench-client-{index}",
                daemon=True,
            )
            process.start()
            child_end.close()
            started.append((process, parent_end))
        _wait_all([conn for _, conn in started], "ready", READY_SECONDS)
        on_start()
        go_at = time.monotonic()
        go.set()
        finished = _wait_all([conn for _, conn in started], "done", timeout)
        done_at = time.monotonic()
        on_done()
        return HarnessResult(sorted(finished, key=lambda p: p.index), go_at, done_at)
    finally:
        for process, conn in started:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            conn.close()


def _wait_all(conns: list[multiprocessing.connection.Connection], state: str, timeout: float) -> list[Any]:
    """One `state` message from every process within `timeout`; an error message fails the run."""
    deadline = time.monotonic() + timeout
    pending = list(conns)
    payloads: list[Any] = []
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise HarnessError(f"{len(pending)} client process(es) not {state} within {timeout:.0f}s")
        for conn in multiprocessing.connection.wait(pending, timeout=left):
            assert isinstance(conn, multiprocessing.connection.Connection)
            try:
                kind, payload = conn.recv()
            except EOFError:
                raise HarnessError(f"a client process exited before it was {state}") from None
            if kind == "error":
                raise HarnessError(f"a client process failed:\n{payload}")
            if kind != state:
                raise HarnessError(f"a client process said {kind!r}, expected {state!r}")
            payloads.append(payload)
            pending.remove(conn)
    return payloads
