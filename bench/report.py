"""The one table and the JSON beside it.

Every figure is a row with the value for cargobay, for registry:2, their ratio
(cargobay / registry:2) and, where issue 5 sets one, the target and whether it is
met. Each workload's section opens with two rows on the load: the client processes'
CPU (one at a core's limit is flagged SATURATED) and clients plus server against
the machine's cores (flagged MACHINE-BOUND from 90 %: the figure is then the
machine's limit as much as the server's). The table is Markdown, so it reads in a
terminal and pastes into the README.
The JSON holds the same figures (`figures`, what the smoke test checks) and every
workload's full record (`servers`), with NaN written as null.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.plan import GiB
from bench.runner import MACHINE_BOUND
from bench.servers import CARGOBAY, REGISTRY2
from bench.workloads.verify import BLOB, IMAGE

Record = dict[str, Any]
Machine = dict[str, Any]
Value = Callable[[Record, Machine], float | None]
Row = tuple[str, str, str, Value, int]  # name, label, unit, value, decimal places

WORKLOADS = {
    "push-large-monolithic": "push-large, monolithic PUT",
    "push-large-chunked": "push-large, chunked PATCH",
    "pull-large": "pull-large",
    "small-auth": "small, with auth",
    "small-noauth": "small, without auth",
    "ci-mix": "ci-mix",
    "verify": "verify, untimed: every blob and image pushed, read back and hashed",
}


@dataclass(frozen=True)
class Target:
    """A bound from issue 5: on the ratio, or on cargobay's own value."""

    bound: float
    at_least: bool  # True: value >= bound; False: value <= bound
    on_ratio: bool = True
    text: str = ""

    def met(self, cargobay: float | None, ratio: float | None) -> bool | None:
        value = ratio if self.on_ratio else cargobay
        if value is None or math.isnan(value):
            return None
        return value >= self.bound if self.at_least else value <= self.bound

    def describe(self) -> str:
        if self.text:
            return self.text
        sign = ">=" if self.at_least else "<="
        return f"ratio {sign} {self.bound:g}" if self.on_ratio else f"{sign} {self.bound:g}"


@dataclass(frozen=True)
class Figure:
    key: str
    workload: str
    label: str
    unit: str
    value: Value
    target: Target | None = None
    digits: int = 1


def _get(*path: str) -> Value:
    def value(record: Record, machine: Machine) -> float | None:
        node: Any = record
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return None if node is None else float(node)

    return value


def _share_of_push_limit(record: Record, machine: Machine) -> float | None:
    """push MB/s as a percentage of the slower of sha256 (one core) and the storage's writes."""
    limit = min(machine["sha256_mb_s"], machine["storage_write_mb_s"])
    return 100 * float(record["mb_s"]) / limit if limit else None


def _share_of_loopback(record: Record, machine: Machine) -> float | None:
    limit = machine["loopback_tcp_mb_s"]
    return 100 * float(record["mb_s"]) / limit if limit else None


def _seconds(*path: str) -> Value:
    milliseconds = _get(*path)

    def value(record: Record, machine: Machine) -> float | None:
        got = milliseconds(record, machine)
        return None if got is None else got / 1000

    return value


# issue 5's targets, by figure key
TARGETS = {
    "push-large-monolithic.mb_s": Target(2.0, at_least=True),
    "push-large-monolithic.share_of_limit_pct": Target(70, at_least=True, on_ratio=False, text=">= 70 %"),
    "push-large-chunked.mb_s": Target(2.0, at_least=True),
    "push-large-chunked.share_of_limit_pct": Target(70, at_least=True, on_ratio=False, text=">= 70 %"),
    "pull-large.mb_s": Target(1.0, at_least=True),
    "pull-large.server_cpu_s_per_gib": Target(0.5, at_least=False),
    "small-auth.requests_per_s": Target(2.0, at_least=True),
    "small-auth.p99_ms": Target(1.0, at_least=False),
    "small-noauth.requests_per_s": Target(1.0, at_least=True),
    "ci-mix.push_images_per_s": Target(1.0, at_least=True),
    "ci-mix.pull_images_per_s": Target(1.0, at_least=True),
    "ci-mix.pull_p99_s": Target(1.0, at_least=False),
    "ci-mix.peak_rss_process_mib": Target(150, at_least=False, on_ratio=False, text="<= 150 MiB per process"),
}
NO_ERRORS = Target(0, at_least=False, on_ratio=False, text="0")


def _count(kind: str) -> Value:
    """How many operations of `kind` succeeded: 0 rather than missing when none did."""

    def value(record: Record, machine: Machine) -> float | None:
        return float(record["operations"].get(kind, 0))

    return value


def _gib_read(record: Record, machine: Machine) -> float | None:
    return float(record["bytes_down"]) / GiB


SERVER_ROWS: list[Row] = [
    ("server_cores_busy", "server CPU, cores busy", "", _get("server", "cores_busy"), 2),
    ("peak_rss_mib", "server peak RSS, all processes", "MiB", _get("server", "peak_rss_mib"), 1),
    (
        "peak_rss_process_mib",
        "server peak RSS, largest process",
        "MiB",
        _get("server", "peak_rss_process_mib"),
        1,
    ),
]


def _rows(workload: str, rows: list[Row], server_rows: bool = True) -> list[Figure]:
    """The workload's own rows, then the server-side rows of a timed workload, then errors."""
    rows = [*rows, *(SERVER_ROWS if server_rows else [])]
    figures = [
        Figure(f"{workload}.{name}", workload, label, unit, value, TARGETS.get(f"{workload}.{name}"), digits)
        for name, label, unit, value, digits in rows
    ]
    figures.append(Figure(f"{workload}.errors", workload, "errors", "", _get("errors"), NO_ERRORS, 0))
    return figures


def _throughput_rows(share_name: str, share_label: str, share: Value) -> list[Row]:
    return [
        ("mb_s", "throughput", "MB/s", _get("mb_s"), 0),
        (share_name, share_label, "%", share, 0),
        ("server_cpu_s_per_gib", "server CPU per GiB moved", "s/GiB", _get("server", "cpu_s_per_gib"), 2),
    ]


def _request_rows() -> list[Row]:
    return [
        ("requests_per_s", "requests per second", "req/s", _get("per_second", "request"), 0),
        ("p50_ms", "latency p50", "ms", _get("latency_ms", "request", "p50"), 2),
        ("p99_ms", "latency p99", "ms", _get("latency_ms", "request", "p99"), 2),
        (
            "server_cpu_ms_per_request",
            "server CPU per request",
            "ms",
            _get("server", "cpu_ms_per_request"),
            3,
        ),
    ]


PUSH_SHARE = ("share_of_limit_pct", "% of min(sha256 one core, write one stream)", _share_of_push_limit)

FIGURES: list[Figure] = [
    *_rows("push-large-monolithic", _throughput_rows(*PUSH_SHARE)),
    *_rows("push-large-chunked", _throughput_rows(*PUSH_SHARE)),
    *_rows(
        "pull-large", _throughput_rows("share_of_loopback_pct", "% of loopback TCP limit", _share_of_loopback)
    ),
    *_rows("small-auth", _request_rows()),
    *_rows("small-noauth", _request_rows()),
    *_rows(
        "ci-mix",
        [
            ("push_images_per_s", "images pushed per second", "img/s", _get("per_second", "image-push"), 2),
            ("pull_images_per_s", "images pulled per second", "img/s", _get("per_second", "image-pull"), 2),
            ("push_p99_s", "time per image push, p99", "s", _seconds("latency_ms", "image-push", "p99"), 2),
            ("pull_p99_s", "time per image pull, p99", "s", _seconds("latency_ms", "image-pull", "p99"), 2),
            ("mb_s", "throughput, both ways", "MB/s", _get("mb_s"), 0),
            ("server_cpu_s_per_gib", "server CPU per GiB moved", "s/GiB", _get("server", "cpu_s_per_gib"), 2),
        ],
    ),
    *_rows(
        "verify",
        [
            ("blobs", "push-large blobs read back (monolithic and chunked)", "", _count(BLOB), 0),
            ("images", "ci-mix pushed images read back (manifest, config, layers)", "", _count(IMAGE), 0),
            ("gib_read", "bytes read back", "GiB", _gib_read, 2),
            ("wall_s", "time taken", "s", _get("wall_s"), 1),
        ],
        server_rows=False,
    ),
]


def _clean(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def figures(servers: dict[str, dict[str, Any]], machine: Machine) -> list[dict[str, Any]]:
    """Every figure for both servers, with ratio, target and whether it is met."""
    rows = []
    for figure in FIGURES:
        values: dict[str, float | None] = {}
        for kind in (CARGOBAY, REGISTRY2):
            record = servers[kind]["workloads"].get(figure.workload)
            values[kind] = _clean(figure.value(record, machine)) if record else None
        ours, theirs = values[CARGOBAY], values[REGISTRY2]
        ratio = ours / theirs if ours is not None and theirs else None
        rows.append(
            {
                "key": figure.key,
                "workload": figure.workload,
                "label": figure.label,
                "unit": figure.unit,
                CARGOBAY: ours,
                REGISTRY2: theirs,
                "ratio": ratio,
                "target": figure.target.describe() if figure.target else None,
                "met": figure.target.met(ours, ratio) if figure.target else None,
            }
        )
    return rows


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def render(results: dict[str, Any]) -> str:
    """The one table: figures by workload, client load, server processes, machine limits."""
    digits = {figure.key: figure.digits for figure in FIGURES}
    servers = results["servers"]
    lines = [
        "| figure | cargobay | registry:2 | cargobay / registry:2 | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    current = None
    for row in results["figures"]:
        if row["workload"] != current:
            current = row["workload"]
            lines.append(f"| **{WORKLOADS[current]}** | | | | |")
            lines.append(_clients_row(servers, current))
            lines.append(_machine_row(servers, current))
        unit = f" ({row['unit']})" if row["unit"] else ""
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        target = row["target"] or ""
        if row["met"] is not None:
            target += " ✓" if row["met"] else " ✗"
        places = digits[row["key"]]
        lines.append(
            f"| {row['label']}{unit} | {_number(row[CARGOBAY], places)} | "
            f"{_number(row[REGISTRY2], places)} | {ratio} | {target} |"
        )
    lines.append("| **servers** | | | | |")
    lines.append(f"| version | {servers[CARGOBAY]['version']} | {servers[REGISTRY2]['version']} | | |")
    lines.append(
        f"| server processes (most seen) | {servers[CARGOBAY]['processes']} | "
        f"{servers[REGISTRY2]['processes']} | | |"
    )
    machine, settings = results["machine"], results["settings"]
    cores = machine["cpus"]
    lines += [
        f"| cargobay `--workers` | {settings['cargobay_workers']} | | | |",
        f"| client processes (load generator) | {settings['client_processes']} | | | |",
        "| **machine limits** (same run) | | | | |",
        f"| sha256 (hashlib), one core; all {cores} | {_rate(machine['sha256_mb_s'])}; "
        f"{_rate(machine['sha256_all_cores_mb_s'])} | | | |",
        f"| storage write to page cache, one stream; {cores} at once | "
        f"{_rate(machine['storage_write_mb_s'])}; {_rate(machine['storage_write_all_cores_mb_s'])} | | | |",
        f"| loopback TCP, one connection | {_rate(machine['loopback_tcp_mb_s'])} | | | |",
        f"| cores | {cores} | | | |",
        f"| run time | {results['duration_s']:.0f} s | | | |",
    ]
    return "\n".join(lines)


def _rate(mb_s: float) -> str:
    return f"{mb_s:,.0f} MB/s"


def _clients_row(servers: dict[str, dict[str, Any]], workload: str) -> str:
    def cell(record: dict[str, Any]) -> str:
        load = record["client_processes"]
        flag = " SATURATED" if load["saturated"] else ""
        return (
            f"{record['clients']} clients in {load['processes']} procs using {load['cores_busy']:.2f} cores, "
            f"busiest {load['max_cpu_per_wall']:.2f}{flag}"
        )

    cells = _per_server(servers, workload, cell)
    return f"| load generator (CPU s per s) | {cells[0]} | {cells[1]} | | busiest process < 0.9 |"


def _machine_row(servers: dict[str, dict[str, Any]], workload: str) -> str:
    """Clients plus server against the cores: a figure made on a full machine is flagged."""

    def cell(record: dict[str, Any]) -> str:
        load = record["machine_load"]
        flag = " MACHINE-BOUND" if load["bound"] else ""
        return (
            f"{load['clients_cores_busy']:.2f} + {load['server_cores_busy']:.2f} = {load['cores_busy']:.2f} "
            f"of {load['cores']} cores ({100 * load['share_of_cores']:.0f} %){flag}"
        )

    cells = _per_server(servers, workload, cell)
    return (
        f"| machine: clients + server CPU (cores busy) | {cells[0]} | {cells[1]} | | "
        f"< {100 * MACHINE_BOUND:.0f} % of cores |"
    )


def _per_server(
    servers: dict[str, dict[str, Any]], workload: str, cell: Callable[[dict[str, Any]], str]
) -> list[str]:
    """One cell for cargobay and one for registry:2: `cell` of the workload's record, or `-`."""
    records = (servers[kind]["workloads"].get(workload) for kind in (CARGOBAY, REGISTRY2))
    return [cell(record) if record else "-" for record in records]


def json_safe(value: Any) -> Any:
    """NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float):
        return _clean(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(results), indent=2, sort_keys=False, allow_nan=False) + "\n")
