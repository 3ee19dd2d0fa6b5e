"""One workload against one server: run the clients, measure the server, make one record.

The server's CPU time is read from /proc right before the start signal and right
after the last client finished; its RSS is sampled in between. The record holds
only plain numbers (the JSON's shape); what was pushed is returned beside it, for
pull-large and the verification pass to read back.

Clients and server share the machine: when together they keep at least
`MACHINE_BOUND` of its cores busy, the figure is the machine's limit as much as
either side's, even though no single process saturated a core. The record says so
(`machine_load`), with the figures.
"""

import math
import os
from dataclasses import dataclass, field
from typing import Any

from bench import procmetrics
from bench.harness import SATURATED, HarnessResult, run_clients
from bench.plan import GiB, MiB
from bench.servers import Server
from bench.workloads.base import Pushed, PushedBlob, PushedImage, Target, Workload

MACHINE_BOUND = 0.9  # clients' plus server's CPU seconds per wall second, as a share of the cores


@dataclass
class Measured:
    record: dict[str, Any]
    produced: list[Pushed] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return int(self.record["errors"])

    @property
    def blobs(self) -> list[PushedBlob]:
        return [item for item in self.produced if isinstance(item, PushedBlob)]

    @property
    def images(self) -> list[PushedImage]:
        return [item for item in self.produced if isinstance(item, PushedImage)]


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def target_of(server: Server, request_timeout: float) -> Target:
    return Target(server.url, server.credentials, request_timeout)


def run_workload(
    server: Server,
    workload: Workload,
    *,
    client_processes: int,
    duration: float,
    request_timeout: float,
    workload_timeout: float,
) -> Measured:
    """Run `workload` against `server` and measure both sides."""
    probe: dict[str, Any] = {}
    os.sync()  # the previous workload's writeback must not run (and use CPU) during this one

    def on_start() -> None:
        probe["sampler"] = procmetrics.TreeSampler(server.pid).start()
        probe["cpu0"] = procmetrics.tree_cpu_seconds(server.pid)

    def on_done() -> None:
        probe["cpu1"] = procmetrics.tree_cpu_seconds(server.pid)
        probe["usage"] = probe["sampler"].stop()

    try:
        outcome = run_clients(
            workload,
            target_of(server, request_timeout),
            client_processes,
            duration,
            duration + workload_timeout,
            on_start,
            on_done,
        )
    finally:
        if "sampler" in probe and "usage" not in probe:
            probe["sampler"].stop()
    usage: procmetrics.TreeUsage = probe["usage"]
    record = _record(workload, outcome, server_cpu=probe["cpu1"] - probe["cpu0"], usage=usage)
    if server.process.poll() is not None:
        record["errors"] += 1
        record["error_messages"].append(f"the server exited with {server.process.returncode}")
    produced = [item for client in outcome.clients for item in client.produced]
    return Measured(record, produced)


def _record(
    workload: Workload, outcome: HarnessResult, server_cpu: float, usage: procmetrics.TreeUsage
) -> dict[str, Any]:
    clients = outcome.clients
    started = min((c.started for c in clients if c.started), default=outcome.go_at)
    finished = max((c.finished for c in clients if c.finished), default=outcome.done_at)
    wall = max(finished - started, 1e-9)
    bytes_up = sum(c.bytes_up for c in clients)
    bytes_down = sum(c.bytes_down for c in clients)
    moved = bytes_up + bytes_down
    counts: dict[str, int] = {}
    durations: dict[str, list[float]] = {}
    for client in clients:
        for kind, count in client.counts.items():
            counts[kind] = counts.get(kind, 0) + count
        for kind, values in client.durations.items():
            durations.setdefault(kind, []).extend(values)
    requests = counts.get("request", 0)
    processes = outcome.processes
    clients_cpu = sum(p.cpu_seconds for p in processes)
    return {
        "workload": workload.name,
        "clients": len(clients),
        "wall_s": wall,
        "bytes_up": bytes_up,
        "bytes_down": bytes_down,
        "mb_s": moved / wall / 1e6,
        "operations": counts,
        "per_second": {kind: count / wall for kind, count in counts.items()},
        "latency_ms": {
            kind: {
                "p50": 1000 * percentile(values, 0.50),
                "p99": 1000 * percentile(values, 0.99),
                "max": 1000 * max(values),
            }
            for kind, values in durations.items()
        },
        "errors": sum(c.error_count for c in clients),
        "error_messages": [message for c in clients for message in c.errors][:10],
        "server": {
            "cpu_s": server_cpu,
            "cores_busy": server_cpu / wall,
            "cpu_s_per_gib": server_cpu / (moved / GiB) if moved else math.nan,
            "cpu_ms_per_request": 1000 * server_cpu / requests if requests else math.nan,
            "peak_rss_mib": usage.peak_total_rss / MiB,
            "peak_rss_process_mib": usage.peak_process_rss / MiB,
            "peak_rss_each_process_mib": sorted(
                (rss / MiB for rss in usage.per_process_peak.values()), reverse=True
            ),
            "processes": usage.max_processes,
            "rss_samples": usage.samples,
        },
        "client_processes": {
            "processes": len(processes),
            "cpu_s": clients_cpu,
            "cores_busy": clients_cpu / wall,
            "max_cpu_per_wall": max((p.cpu_per_wall for p in processes), default=0.0),
            "saturated": any(p.cpu_per_wall >= SATURATED for p in processes),
            "max_rss_mib": max((p.max_rss_bytes for p in processes), default=0) / MiB,
        },
        "machine_load": machine_load(clients_cpu / wall, server_cpu / wall),
    }


def machine_load(clients_cores: float, server_cores: float) -> dict[str, Any]:
    """Clients plus server against the machine's cores; `bound` from `MACHINE_BOUND` of them up."""
    cores = os.cpu_count() or 1  # as the table's machine limits count them
    busy = clients_cores + server_cores
    return {
        "cores": cores,
        "clients_cores_busy": clients_cores,
        "server_cores_busy": server_cores,
        "cores_busy": busy,
        "share_of_cores": busy / cores,
        "bound": busy >= MACHINE_BOUND * cores,
    }
