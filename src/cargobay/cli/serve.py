"""`cargobay serve [CONFIG]`: run the registry, configured as registry:2 would be."""

import argparse
import logging
import os
import tempfile
from pathlib import Path

from cargobay import __version__
from cargobay.auth.htpasswd import HtpasswdError
from cargobay.cli.errors import CommandError
from cargobay.config import ConfigError, find_config_file, load_settings
from cargobay.http.app import create_app
from cargobay.http.server import check_listen_address, default_workers, run_server, ssl_context
from cargobay.storage import layout

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
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help=f"worker processes sharing the port (default: one per CPU, here {default_workers()})",
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
        create_app(settings)  # every check a worker would make, made once, here
        ssl_context(settings)
        check_listen_address(settings)
    except (ConfigError, HtpasswdError) as error:
        raise CommandError(str(error)) from None
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise CommandError(f"--workers {workers}: use 1 or more")
    if settings.storage_driver == "inmemory" and workers > 1:
        log.warning("storage.inmemory keeps data in one process: running 1 worker, not %d", workers)
        workers = 1
    scheme = "https" if settings.tls_certificate else "http"
    log.info(
        "cargobay %s serving %s://%s:%d with %d workers, storage %s %s, auth %s, config %s",
        __version__,
        scheme,
        settings.listen_host or "*",
        settings.listen_port,
        workers,
        settings.storage_driver,
        settings.root_directory,
        f"htpasswd {settings.htpasswd.path}" if settings.htpasswd else "off (open registry)",
        path or "built-in defaults",
    )
    return run_server(settings, workers)


def configure_logging(level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("cargobay.access").setLevel(logging.INFO)


def check_writable(root: Path) -> None:
    """Fail at startup, not at the first push, when the data directory cannot be written:
    the top and, in a tree registry:2 left (often root's), the directories pushes write in."""
    for directory in (root, root / layout.BLOBS, root / layout.REPOSITORIES):
        if directory != root and not directory.is_dir():
            continue
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".cargobay-write-check-"):
                pass
        except OSError as error:
            raise ConfigError(
                f"storage.filesystem.rootdirectory: {directory} is not writable by uid {os.getuid()}: "
                f"{error.strerror} (on the host: chown -R {os.getuid()}:{os.getgid()} the data directory)"
            ) from None
