"""`cargobay gc` and registry:2's `garbage-collect`: collect garbage in the storage of a config.

Safe to run while servers use the same storage (see `cargobay.registry.gc`).
"""

import argparse
import asyncio
import datetime
import sys
from pathlib import Path

from cargobay.cli.errors import CommandError
from cargobay.cli.progress import ProgressBar
from cargobay.config import ConfigError, Settings, find_config_file, load_settings
from cargobay.durations import parse_duration
from cargobay.http.app import make_driver
from cargobay.registry.gc import DEFAULT_GRACE, CollectionReport, collect_garbage


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    gc = commands.add_parser("gc", help="collect garbage, safely while the registry runs")
    gc.add_argument("config_file", nargs="?", type=Path, metavar="CONFIG")
    gc.add_argument("--config", type=Path, dest="config_option", metavar="FILE")
    gc.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    gc.add_argument(
        "--grace",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="keep anything refreshed this recently: 0, 30s, 15m, 1h "
        f"(default: the config's cargobay.gc.grace, else {_hours(DEFAULT_GRACE)})",
    )
    gc.add_argument(
        "--delete-untagged",
        action="store_true",
        help="also remove manifests no tag reaches (children of tagged indexes stay)",
    )
    gc.set_defaults(run=run)
    # registry:2's command line, for scripts written for it.
    compat = commands.add_parser("garbage-collect", help="registry:2's garbage-collect, same arguments")
    compat.add_argument("config_file", type=Path, metavar="CONFIG")
    compat.add_argument("-d", "--dry-run", action="store_true")
    compat.add_argument("-m", "--delete-untagged", action="store_true")
    compat.set_defaults(run=run, config_option=None, grace=None)


def run(args: argparse.Namespace) -> int:
    settings = load_storage_settings(args.config_option or args.config_file)
    report = asyncio.run(
        collect_garbage(
            make_driver(settings),
            grace=args.grace if args.grace is not None else settings.collection.grace,
            delete_untagged=args.delete_untagged,
            dry_run=args.dry_run,
            progress=ProgressBar(),
        )
    )
    print_report(report)
    return 0


def print_report(report: CollectionReport) -> None:
    verb = "would remove" if report.dry_run else "removed"
    for name, digest in report.manifests:
        print(f"{verb} manifest {name}@{digest}")
    for digest, size in report.blobs:
        print(f"{verb} blob {digest} ({size} bytes)")
    for name in report.repositories:
        print(f"{verb} empty repository {name}")
    print(
        f"{verb} {len(report.manifests)} manifests and {len(report.blobs)} blobs, "
        f"{report.freed_bytes} bytes; {report.kept_blobs} blobs are in use",
        file=sys.stderr,
    )


def load_storage_settings(path: Path | None) -> Settings:
    """The settings of a maintenance command, which works on the storage from outside a server."""
    try:
        settings = load_settings(find_config_file(path))
    except ConfigError as error:
        raise CommandError(str(error)) from None
    if settings.storage_driver == "inmemory":
        raise CommandError("storage.inmemory: an in-memory registry has no storage to work on from outside")
    if not settings.root_directory.is_dir():
        raise CommandError(
            f"storage.filesystem.rootdirectory: {settings.root_directory} is not a directory: "
            "is this the registry's configuration?"
        )
    return settings


def _hours(duration: datetime.timedelta) -> str:
    return f"{duration.total_seconds() / 3600:g}h"


def _duration(text: str) -> datetime.timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
