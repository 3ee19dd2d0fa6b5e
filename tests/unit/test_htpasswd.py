"""htpasswd parsing and checking: bcrypt only, compatible with `htpasswd -B`, never on the loop."""

import asyncio
import subprocess
from pathlib import Path

import pytest

from cargobay.auth.htpasswd import (
    HtpasswdAuthenticator,
    HtpasswdError,
    decoy_hash,
    hash_password,
    parse_htpasswd,
)
from tests.support.tools import require_tool


def test_parse_accepts_every_bcrypt_prefix_and_skips_comments() -> None:
    text = "# users\n\nalice:$2y$05$abc\nbob:$2a$05$def\ncarol:$2b$05$ghi\n"
    assert parse_htpasswd(text, "f") == {
        "alice": b"$2y$05$abc",
        "bob": b"$2a$05$def",
        "carol": b"$2b$05$ghi",
    }


@pytest.mark.parametrize(
    ("line", "kind"),
    [("dave:$apr1$salt$hash", "not bcrypt"), ("erin:{SHA}abc=", "not bcrypt"), ("plain", "USER:HASH")],
)
def test_other_hash_kinds_are_refused_naming_the_line(line: str, kind: str) -> None:
    with pytest.raises(HtpasswdError, match=f"users.htpasswd line 2: .*{kind}"):
        parse_htpasswd(f"alice:$2y$05$abc\n{line}\n", "users.htpasswd")


def test_hash_password_writes_the_htpasswd_dash_b_form() -> None:
    hashed = hash_password("secret", cost=5)
    assert hashed.startswith("$2y$05$")
    assert len(hashed) == 60


def check(path: Path, user: str, password: str) -> bool:
    async def verify() -> bool:
        return await HtpasswdAuthenticator(path).verify(user, password)

    return asyncio.run(verify())


def test_verify_right_wrong_unknown_and_too_long(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hash_password('right', cost=4)}\n")
    assert check(path, "alice", "right")
    assert not check(path, "alice", "wrong")
    assert not check(path, "nobody", "right")
    assert not check(path, "alice", "x" * 100)


def test_entries_written_by_htpasswd_dash_b_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    subprocess.run([require_tool("htpasswd"), "-B", "-b", "-c", str(path), "builder", "s3cret"], check=True)
    assert check(path, "builder", "s3cret")
    assert not check(path, "builder", "S3cret")


def test_bcrypt_runs_off_the_loop_once_per_new_login_for_known_and_unknown_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown users cost one bcrypt run like a wrong password; a verified login is remembered."""
    import threading

    import bcrypt

    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hash_password('right', cost=4)}\n")
    calls: list[str] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(threading.current_thread().name)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)

    async def scenario() -> list[bool]:
        authenticator = HtpasswdAuthenticator(path)
        return [
            await authenticator.verify("alice", "right"),
            await authenticator.verify("alice", "right"),  # remembered: no bcrypt
            await authenticator.verify("alice", "wrong"),
            await authenticator.verify("nobody", "right"),
        ]

    assert asyncio.run(scenario()) == [True, True, False, False]
    assert len(calls) == 3
    assert all(name.startswith("cargobay-blocking") for name in calls)


def test_the_decoy_for_unknown_users_costs_what_most_users_hashes_cost() -> None:
    """A file mixing `htpasswd -B` (cost 5) and `cargobay user add` (cost 10) entries."""
    mixed = {"a": hash_password("x", cost=5).encode(), "b": hash_password("x", cost=5).encode()}
    mixed["c"] = hash_password("x", cost=6).encode()
    assert decoy_hash(mixed).startswith(b"$2b$05$")
    assert decoy_hash({}).startswith(b"$2b$10$")
