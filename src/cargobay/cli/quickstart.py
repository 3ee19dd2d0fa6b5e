"""`cargobay quickstart`: a registry on 127.0.0.1:5000 in a local folder, with a login it prints.

For a first look and for development. It writes a real `config.yml` and a
real htpasswd file into the folder, so what it runs is what `serve` runs; the
generated password is kept beside them (mode 0600) so that every start can
print the same login.
"""

import argparse
import os
import secrets
from pathlib import Path

from cargobay.auth.htpasswd import hash_password
from cargobay.cli import serve

USER = "admin"


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser("quickstart", help="run a registry in a local folder with a generated login")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("cargobay-data"),
        help="folder for the data, config and login (default ./cargobay-data)",
    )
    parser.add_argument("--addr", default="127.0.0.1:5000", help="listen address")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    folder: Path = args.dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    login = folder / "login.txt"
    htpasswd = folder / "htpasswd"
    if not login.exists() or not htpasswd.exists():
        password = secrets.token_urlsafe(18)
        htpasswd.write_text(f"{USER}:{hash_password(password)}\n")
        login.touch(mode=0o600)
        login.write_text(f"{USER}:{password}\n")
    user, password = login.read_text().strip().split(":", 1)
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        f"http:\n  addr: {args.addr}\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'registry'}\n"
        "  delete:\n    enabled: true\n"
        f"auth:\n  htpasswd:\n    realm: cargobay\n    path: {htpasswd}\n"
    )
    host = args.addr if not args.addr.startswith(":") else f"localhost{args.addr}"
    print(
        f"cargobay quickstart: data, config and login in {folder}\n"
        f"  registry: http://{host}\n"
        f"  login:    {user} / {password}\n"
        f"  try:      docker login {host} -u {user} --password-stdin <<< '{password}'\n",
        flush=True,
    )
    os.environ.pop("REGISTRY_AUTH", None)  # the printed login must be the one that works
    return serve.run(argparse.Namespace(config_option=config, config_file=None, workers=None))
