"""`cargobay user add|passwd|check|delete|list --file HTPASSWD`: manage an htpasswd file.

Entries are bcrypt in the `$2y$` form `htpasswd -B` writes, so the file works
with registry:2 and Apache too. Lines this command does not touch (comments,
other users) are kept as they are. The file is replaced atomically; a running
cargobay picks the change up within a second, without a restart.
"""

import argparse
import getpass
import os
import sys
import tempfile
from pathlib import Path

from cargobay.auth.htpasswd import DEFAULT_COST, hash_password, password_matches
from cargobay.cli.errors import CommandError


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser("user", help="manage users of an htpasswd file")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text, needs_name, needs_password in (
        ("add", "add a user", True, True),
        ("passwd", "change a user's password", True, True),
        ("check", "exit 0 if the password is the user's, 1 if not (for idempotent scripts)", True, True),
        ("delete", "remove a user", True, False),
        ("list", "list the users", False, False),
    ):
        sub = actions.add_parser(action, help=help_text)
        if needs_name:
            sub.add_argument("name", help="user name")
        sub.add_argument("--file", type=Path, required=True, help="the htpasswd file")
        if needs_password:
            sub.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from standard input instead of a prompt",
            )
            sub.add_argument(
                "--cost",
                type=int,
                default=DEFAULT_COST,
                help=f"bcrypt cost, 4 to 31 (default {DEFAULT_COST})",
            )
        sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    lines = _read_lines(args.file)
    if args.action == "list":
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#"):
                print(line.split(":", 1)[0])
        return 0
    name = _check_name(args.name)
    index = next((i for i, line in enumerate(lines) if line.split(":", 1)[0] == name), None)
    if args.action == "add" and index is not None:
        raise CommandError(f"user {name!r} already exists in {args.file}: use `cargobay user passwd`")
    if args.action in ("passwd", "check", "delete") and index is None:
        raise CommandError(f"user {name!r} is not in {args.file}")
    if args.action == "check":
        assert index is not None
        stored = lines[index].split(":", 1)[1].strip().encode()
        return (
            0 if password_matches(_read_password(args.password_stdin, confirm=False).encode(), stored) else 1
        )
    if args.action == "delete":
        assert index is not None
        del lines[index]
    else:
        if not 4 <= args.cost <= 31:
            raise CommandError(f"--cost {args.cost} is not valid: use 4 to 31")
        entry = f"{name}:{hash_password(_read_password(args.password_stdin), args.cost)}"
        if index is None:
            lines.append(entry)
        else:
            lines[index] = entry
    _write_lines(args.file, lines)
    print(f"{args.action}: {name} in {args.file}", file=sys.stderr)
    return 0


def _check_name(name: str) -> str:
    if not name or ":" in name or any(c.isspace() for c in name):
        raise CommandError(f"user name {name!r} is not valid: no colons or spaces")
    return name


def _read_password(from_stdin: bool, *, confirm: bool = True) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not confirm:
        password = getpass.getpass("Password: ")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Re-type new password: ") != password:
            raise CommandError("the passwords do not match")
    if not password:
        raise CommandError("the password is empty")
    if len(password.encode()) > 72:
        raise CommandError("the password is longer than bcrypt's limit of 72 bytes")
    return password


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None


def _write_lines(path: Path, lines: list[str]) -> None:
    """Replace the file atomically, keeping its permissions and owner (0640 for a new one):
    run as root on a deployed file, a new owner would lock the registry's user out of it."""
    existing = path.stat() if path.exists() else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
        if existing is None:
            os.chmod(temp, 0o640)
        else:
            if (existing.st_uid, existing.st_gid) != (os.getuid(), os.getgid()):
                os.chown(temp, existing.st_uid, existing.st_gid)
            os.chmod(temp, existing.st_mode & 0o7777)
        os.replace(temp, path)
    except OSError as error:
        raise CommandError(f"cannot write {path}: {error.strerror}") from None
