"""`cargobay fsck [CONFIG] [--config FILE] [--repair]`: check every blob, link and upload.

Exit status 0 when storage is clean, 1 when problems were found (repaired or
not, so a script notices), 2 when the check could not run. Safe to run while
servers use the storage (see `cargobay.registry.fsck`).
"""

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from cargobay.cli.du import human_size
from cargobay.cli.gc import load_storage_settings
from cargobay.cli.progress import ProgressBar
from cargobay.http.app import make_driver
from cargobay.registry.fsck import FsckReport, Kind, check_storage
from cargobay.registry.gc import Progress

_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    fsck = commands.add_parser("fsck", help="re-hash every blob, find dangling links and orphaned uploads")
    fsck.add_argument("config_file", nargs="?", type=Path, metavar="CONFIG")
    fsck.add_argument("--config", type=Path, dest="config_option", metavar="FILE")
    fsck.add_argument(
        "--repair",
        action="store_true",
        help="quarantine corrupt blobs, remove dangling links and orphaned uploads",
    )
    fsck.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = load_storage_settings(args.config_option or args.config_file)
    # Repairs are logged with a time, on stderr: the audit trail of what fsck changed.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    report = asyncio.run(
        check_storage(
            make_driver(settings),
            repair=args.repair,
            upload_age=settings.upload_purging.age,
            progress=HashProgressInUnits(ProgressBar()),
        )
    )
    print_report(report)
    return 0 if report.clean else 1


def print_report(report: FsckReport) -> None:
    for finding in report.findings:
        print(f"{finding.kind}: {finding.message}")
        if finding.repair:
            print(f"  repaired: {finding.repair}")
    checked = (
        f"checked {report.blobs} blobs ({human_size(report.bytes)}) in storage "
        f"and {report.repositories} repositories"
    )
    if report.clean:
        print(f"{checked}: clean", file=sys.stderr)
        return
    counts = ", ".join(f"{kind}s: {report.count(kind)}" for kind in Kind)
    print(f"{checked}: {counts}", file=sys.stderr)
    if report.count(Kind.MISSING):
        print(
            "images with a missing reference cannot be pulled: push them again "
            "(the registry answers 404 for what is missing, so the client uploads it)",
            file=sys.stderr,
        )
    repairable = len(report.findings) - report.count(Kind.MISSING)
    if repairable and not report.repair:
        print("run with --repair to quarantine corrupt blobs and remove what dangles", file=sys.stderr)


class HashProgressInUnits:
    """The hash phase counts bytes; show it in the unit that keeps the numbers short."""

    def __init__(self, bar: Progress) -> None:
        self._bar = bar

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != "hash" or total <= 0:
            self._bar(phase, done, total)
            return
        unit, scale = next(((u, s) for u, s in _UNITS if total // s >= 100), ("B", 1))
        units = total // scale
        self._bar(f"hash {unit}", done * units // total, units)
