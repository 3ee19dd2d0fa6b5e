"""The benchmark (`make bench`, bench/) runs end to end against both servers, as a user runs it.

`--quick` keeps every workload, every client count and every check of the full run
and shrinks only sizes and windows. What is asserted is what a reader of the table
relies on: every figure is there for both servers, nothing failed verification,
everything pushed was read back, a machine-bound workload is flagged, the temporary
data is gone afterwards. Never a time or a speed: those belong to the machine, not
to the code.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import FIGURES, WORKLOADS
from bench.runner import machine_load
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parent.parent
RUN_SECONDS = 300  # a bound on a hung run, not an expectation (it takes about 25 s)

pytestmark = pytest.mark.e2e


def test_quick_benchmark_reports_every_figure_for_both_servers_without_errors(tmp_path: Path) -> None:
    require_tool("docker-registry")
    out = tmp_path / "results" / "quick.json"
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--tmpdir", str(scratch)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )

    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert results["errors"] == 0
    for kind in ("cargobay", "registry2"):
        workloads = results["servers"][kind]["workloads"]
        assert set(workloads) == set(WORKLOADS)
        for name, record in workloads.items():
            assert record["errors"] == 0, (kind, name, record["error_messages"])
            assert record["client_processes"]["processes"] >= 1
            load = record["machine_load"]
            assert load == machine_load(load["clients_cores_busy"], load["server_cores_busy"]), (kind, name)
            assert (name in results["machine_bound"][kind]) == load["bound"], (kind, name)
        # every blob push-large pushed and every image ci-mix pushed was read back and hashed
        plan = results["settings"]["plan"]
        read_back = workloads["verify"]["operations"]
        assert read_back["blob"] == 2 * plan["large_clients"], kind
        assert read_back.get("image", 0) == workloads["ci-mix"]["operations"]["image-push"] > 0, kind
    by_key = {row["key"]: row for row in results["figures"]}
    assert set(by_key) == {figure.key for figure in FIGURES}
    for row in by_key.values():
        for kind in ("cargobay", "registry2"):
            assert isinstance(row[kind], int | float), (row["key"], kind, row[kind])
    for limit in ("sha256_mb_s", "loopback_tcp_mb_s", "storage_write_mb_s"):
        assert isinstance(results["machine"][limit], int | float), limit
    # one table on stdout, with a row per figure
    assert result.stdout.startswith("| figure | cargobay | registry:2 | cargobay / registry:2 | target |")
    assert result.stdout.count("\n| ") >= len(FIGURES)
    # servers stopped, temporary data directories removed
    assert list(scratch.iterdir()) == []


def test_a_workload_that_fills_the_cores_is_flagged_machine_bound() -> None:
    cores = os.cpu_count() or 1
    nearly_full = machine_load(clients_cores=0.5 * cores, server_cores=0.45 * cores)
    assert nearly_full["bound"]
    assert nearly_full["share_of_cores"] == pytest.approx(0.95)
    assert not machine_load(clients_cores=0.4 * cores, server_cores=0.4 * cores)["bound"]
