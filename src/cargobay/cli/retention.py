"""`cargobay retention --dry-run|--apply [--now WHEN]`: apply the config's retention rules and
the pushers' expiries (`cargobay.expires-after`) once.

`--now` evaluates the rules as of another time (`+72h`, or an ISO 8601 time):
what would go tomorrow, with `--dry-run`.
"""

import argparse
import asyncio
import datetime
import time
from pathlib import Path

from cargobay.cli.gc import load_storage_settings
from cargobay.durations import parse_duration
from cargobay.http.app import make_driver
from cargobay.registry.retention import apply_retention, plan_retention


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser("retention", help="delete tags by the retention rules and expiries")
    parser.add_argument("config_file", nargs="?", type=Path, metavar="CONFIG")
    parser.add_argument("--config", type=Path, dest="config_option", metavar="FILE")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    mode.add_argument("--apply", action="store_true", help="delete the tags")
    parser.add_argument(
        "--now",
        type=_when,
        default=None,
        metavar="WHEN",
        help="evaluate as of +DURATION from now or an ISO 8601 time (default: now)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = load_storage_settings(args.config_option or args.config_file)
    driver = make_driver(settings)
    now = args.now if args.now is not None else time.time()

    async def retain() -> int:
        planned = await plan_retention(driver, settings.retention.rules, now)
        deleted = planned if args.dry_run else await apply_retention(driver, planned)
        verb = "would delete" if args.dry_run else "deleted"
        for deletion in deleted:
            print(f"{verb} {deletion.repository}:{deletion.tag} ({deletion.digest}): {deletion.reason}")
        print(f"{verb} {len(deleted)} tags")
        return 0

    return asyncio.run(retain())


def _when(text: str) -> float:
    try:
        if text.startswith("+"):
            return time.time() + parse_duration(text[1:]).total_seconds()
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: use +DURATION (+72h) or an ISO 8601 time") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
