"""`cargobay du [CONFIG] [--config FILE] [--json]`: bytes per repository, unique and shared.

Reads the storage of a config, safely while servers use it (it only reads).
The table is for people (sizes in KiB, MiB, …); `--json` gives exact bytes for scripts.
"""

import argparse
import asyncio
import json
from pathlib import Path

from cargobay.cli.gc import load_storage_settings
from cargobay.cli.progress import ProgressBar
from cargobay.http.app import make_driver
from cargobay.registry.usage import StorageUsage, measure_usage

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    du = commands.add_parser("du", help="disk usage per repository, unique and shared")
    du.add_argument("config_file", nargs="?", type=Path, metavar="CONFIG")
    du.add_argument("--config", type=Path, dest="config_option", metavar="FILE")
    du.add_argument("--json", action="store_true", help="exact bytes as JSON instead of a table")
    du.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = load_storage_settings(args.config_option or args.config_file)
    usage = asyncio.run(measure_usage(make_driver(settings), progress=ProgressBar()))
    if args.json:
        print(json.dumps(usage.to_json(), indent=2))
    else:
        print_table(usage)
    return 0


def print_table(usage: StorageUsage) -> None:
    rows = [("REPOSITORY", "MANIFESTS", "BLOBS", "UNIQUE", "SHARED", "TOTAL")]
    rows += [
        (
            repo.name,
            str(repo.manifests),
            str(repo.blobs),
            human_size(repo.unique_bytes),
            human_size(repo.shared_bytes),
            human_size(repo.total_bytes),
        )
        for repo in usage.repositories
    ]
    width = max(len(row[0]) for row in rows)
    for row in rows:
        print(f"{row[0]:<{width}}" + "".join(f"  {cell:>10}" for cell in row[1:]))
    print()
    print(f"stored        {human_size(usage.stored_bytes):>10} in {_blobs(usage.stored_blobs)}")
    print(f"referenced    {human_size(usage.referenced_bytes):>10}")
    print(
        f"unreferenced  {human_size(usage.unreferenced_bytes):>10} in {_blobs(usage.unreferenced_blobs)}"
        " (what a garbage collection can free)"
    )


def human_size(size: int) -> str:
    """`512 B`, `1.5 KiB`, `20.0 MiB`: binary units, one decimal."""
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _blobs(count: int) -> str:
    return "1 blob" if count == 1 else f"{count} blobs"
