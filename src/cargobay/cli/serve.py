"""`cargobay serve [CONFIG]`: run the registry, configured as registry:2 would be."""

import argparse
import logging
import os
import ssl
import tempfile
from pathlib import Path

from aiohttp import web

from cargobay import __version__
from cargobay.auth.htpasswd import HtpasswdError
from cargobay.cli.errors import CommandError
from cargobay.config import ConfigError, Settings, find_config_file, load_settings
from cargobay.http.accesslog import AccessLogger
from cargobay.http.app import create_app

log = logging.getLogger("cargobay")


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser("serve", help="run the registry")
    parser.add_argument(
        "config_file",
        nargs="?",
        type=Path,
        metavar="CONFIG",
        help="config.yml (registry:2's argument form)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        dest="config_option",
        metavar="FILE",
        help="config.yml; default: /etc/docker/registry/config.yml or "
        "/etc/distribution/config.yml when present, else built-in defaults",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = find_config_file(args.config_option or args.config_file)
    configure_logging(logging.INFO)  # so that warnings about the configuration itself show
    try:
        settings = load_settings(path)
        configure_logging(settings.log_level)
        if settings.storage_driver == "filesystem":
            check_writable(settings.root_directory)
        app = create_app(settings)
        ssl_context = _ssl_context(settings)
    except (ConfigError, HtpasswdError) as error:
        raise CommandError(str(error)) from None
    scheme = "https" if settings.tls_certificate else "http"
    log.info(
        "cargobay %s serving %s://%s:%d, storage %s %s, auth %s, config %s",
        __version__,
        scheme,
        settings.listen_host or "*",
        settings.listen_port,
        settings.storage_driver,
        settings.root_directory,
        f"htpasswd {settings.htpasswd.path}" if settings.htpasswd else "off (open registry)",
        path or "built-in defaults",
    )
    web.run_app(
        app,
        host=settings.listen_host or None,
        port=settings.listen_port,
        ssl_context=ssl_context,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("cargobay.access") if settings.access_log else None,
        print=None,
    )
    return 0


def configure_logging(level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("cargobay.access").setLevel(logging.INFO)


def check_writable(root: Path) -> None:
    """Fail at startup, not at the first push, when the data directory cannot be written."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".cargobay-write-check-"):
            pass
    except OSError as error:
        raise ConfigError(
            f"storage.filesystem.rootdirectory: {root} is not writable by uid {os.getuid()}: {error.strerror}"
        ) from None


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_certificate is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_certificate, settings.tls_key)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"http.tls: cannot load certificate and key: {error}") from None
    return context
