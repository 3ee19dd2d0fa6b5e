"""`cargobay healthcheck [CONFIG]`: exit 0 when the local server answers `/v2/`, for HEALTHCHECK.

It reads the same configuration as `serve` (file and REGISTRY_* variables) to
find the port, and counts 401 as healthy: with auth on, an anonymous 401 is
the right answer. Plain urllib, so a health check costs no event loop.
"""

import argparse
import logging
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from cargobay.cli.errors import CommandError
from cargobay.config import ConfigError, find_config_file, load_settings

TIMEOUT_SECONDS = 4


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser("healthcheck", help="exit 0 when the local registry answers")
    parser.add_argument("config_file", nargs="?", type=Path, metavar="CONFIG")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("cargobay.config").setLevel(logging.ERROR)  # serve already warned
    try:
        settings = load_settings(find_config_file(args.config_file))
    except ConfigError as error:
        raise CommandError(str(error)) from None
    host = settings.listen_host if settings.listen_host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls_certificate else "http"
    url = f"{scheme}://{host}:{settings.listen_port}/v2/"
    # The certificate names the public host, not loopback: this check is about liveness only.
    context = ssl._create_unverified_context() if scheme == "https" else None
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS, context=context) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1
    if status in (200, 401):
        return 0
    print(f"unhealthy: {url} answered {status}", file=sys.stderr)
    return 1
