"""The `cargobay` command: one module per command group."""

import argparse
import sys
from collections.abc import Sequence

from cargobay import __version__
from cargobay.cli import du, fsck, gc, healthcheck, quickstart, retention, serve, user
from cargobay.cli.errors import CommandError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cargobay", description="A private container registry, drop-in for registry:2."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(commands)
    user.register(commands)
    quickstart.register(commands)
    healthcheck.register(commands)
    gc.register(commands)
    retention.register(commands)
    du.register(commands)
    fsck.register(commands)
    commands.add_parser("version", help="print the version").set_defaults(
        run=lambda _args: print(f"cargobay {__version__}") or 0
    )
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except CommandError as error:
        print(f"cargobay: error: {error}", file=sys.stderr)
        return 2
