"""The `cargobay` command as a user runs it: version, user management, startup errors."""

import os
import pty
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cargobay.auth.htpasswd import parse_htpasswd
from tests.support.server import free_port
from tests.support.tools import unavailable


def cargobay(*args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 20):
    return subprocess.run(
        [sys.executable, "-m", "cargobay", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}, **(env or {})},
    )


def test_version() -> None:
    result = cargobay("version")
    assert result.returncode == 0
    assert result.stdout.startswith("cargobay 0.")


def test_user_add_passwd_delete_list(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "registry.htpasswd"
    assert (
        cargobay(
            "user", "add", "ci", "--file", str(path), "--password-stdin", "--cost", "4", stdin="first\n"
        ).returncode
        == 0
    )
    assert (
        cargobay(
            "user", "add", "qa", "--file", str(path), "--password-stdin", "--cost", "4", stdin="other\n"
        ).returncode
        == 0
    )
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    first_hash = parse_htpasswd(path.read_text(), "f")["ci"]
    again = cargobay("user", "add", "ci", "--file", str(path), "--password-stdin", stdin="x\n")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert (
        cargobay(
            "user", "passwd", "ci", "--file", str(path), "--password-stdin", "--cost", "4", stdin="second\n"
        ).returncode
        == 0
    )
    assert parse_htpasswd(path.read_text(), "f")["ci"] != first_hash
    assert (
        cargobay("user", "check", "ci", "--file", str(path), "--password-stdin", stdin="second\n").returncode
        == 0
    )
    assert (
        cargobay("user", "check", "ci", "--file", str(path), "--password-stdin", stdin="first\n").returncode
        == 1
    )
    assert cargobay("user", "list", "--file", str(path)).stdout.split() == ["ci", "qa"]
    assert cargobay("user", "delete", "qa", "--file", str(path)).returncode == 0
    assert cargobay("user", "list", "--file", str(path)).stdout.split() == ["ci"]
    missing = cargobay("user", "delete", "qa", "--file", str(path))
    assert missing.returncode == 2
    assert "not in" in missing.stderr


def test_user_passwd_as_root_keeps_the_owner_the_registry_reads_the_file_as(tmp_path: Path) -> None:
    """`sudo cargobay user passwd` on a deployed file must leave it readable by the image's user."""
    if os.getuid() != 0:
        unavailable("changing a file's owner needs root")
    path = tmp_path / "registry.htpasswd"
    assert (
        cargobay(
            "user", "add", "ci", "--file", str(path), "--password-stdin", "--cost", "4", stdin="a\n"
        ).returncode
        == 0
    )
    os.chown(path, 10001, 10001)
    path.chmod(0o440)
    assert (
        cargobay(
            "user", "passwd", "ci", "--file", str(path), "--password-stdin", "--cost", "4", stdin="b\n"
        ).returncode
        == 0
    )
    stat = path.stat()
    assert (stat.st_uid, stat.st_gid, oct(stat.st_mode & 0o777)) == (10001, 10001, "0o440")


def test_user_add_prompts_for_the_password_without_echoing_it(tmp_path: Path) -> None:
    """A person at a terminal: the password is asked twice and never shown."""
    path = tmp_path / "htpasswd"
    pid, terminal = pty.fork()
    if pid == 0:  # the child: cargobay on the terminal
        os.execv(
            sys.executable,
            [sys.executable, "-m", "cargobay", "user", "add", "ci", "--file", str(path), "--cost", "4"],
        )
    seen = b""
    try:
        for prompt in (b"New password: ", b"Re-type new password: "):
            deadline = time.monotonic() + 20
            while not seen.endswith(prompt) and time.monotonic() < deadline:
                if select.select([terminal], [], [], 0.5)[0]:
                    seen += os.read(terminal, 1024)
            assert seen.endswith(prompt), seen
            os.write(terminal, b"typed-secret\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.5)[0]:
                try:
                    chunk = os.read(terminal, 1024)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"typed-secret" not in seen
    assert (
        cargobay(
            "user", "check", "ci", "--file", str(path), "--password-stdin", stdin="typed-secret\n"
        ).returncode
        == 0
    )


def test_user_add_refuses_an_empty_password(tmp_path: Path) -> None:
    result = cargobay("user", "add", "ci", "--file", str(tmp_path / "h"), "--password-stdin", stdin="\n")
    assert result.returncode == 2
    assert "empty" in result.stderr


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        ("storage:\n  delete:\n    enabled: perhaps\n", {}, "storage.delete.enabled"),
        ("", {"REGISTRY_HTTP_ADDR": "bad"}, "http.addr"),
        ("auth:\n  htpasswd:\n    path: /nonexistent/htpasswd\n", {}, "cannot read htpasswd file"),
    ],
)
def test_serve_stops_with_one_clear_sentence(
    tmp_path: Path, config: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(f"storage:\n  filesystem:\n    rootdirectory: {tmp_path}/data\n" + config)
    if "storage:" in config:
        path.write_text(
            config.replace("storage:\n", f"storage:\n  filesystem:\n    rootdirectory: {tmp_path}/d\n")
        )
    for config_arguments in ([str(path)], ["--config", str(path)]):  # registry:2's form, and ours
        result = cargobay(
            "serve", *config_arguments, env={"REGISTRY_HTTP_ADDR": f"127.0.0.1:{free_port()}", **env}
        )
        assert result.returncode == 2
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_serve_stops_with_one_sentence_when_the_address_is_taken_or_unknown(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/data\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for addr, message in (
            (f"127.0.0.1:{port}", f"http.addr: cannot listen on 127.0.0.1:{port}: Address already in use"),
            ("no-such-host.invalid:5000", "http.addr: no-such-host.invalid:5000: cannot resolve the host"),
        ):
            for workers in ("1", "2"):
                result = cargobay(
                    "serve", str(config), "--workers", workers, env={"REGISTRY_HTTP_ADDR": addr}
                )
                assert result.returncode == 2, result.stderr
                assert message in result.stderr
                assert "Traceback" not in result.stderr


def test_serve_refuses_a_non_bcrypt_htpasswd_naming_the_line(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("ok:$2y$05$abcdefghijklmnopqrstuu\nold:$apr1$x$y\n")
    result = cargobay(
        "serve",
        env={
            "REGISTRY_HTTP_ADDR": f"127.0.0.1:{free_port()}",
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "data"),
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_PATH": str(htpasswd),
        },
    )
    assert result.returncode == 2
    assert f"{htpasswd} line 2" in result.stderr


def test_serve_refuses_a_data_directory_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = cargobay(
        "serve",
        env={
            "REGISTRY_HTTP_ADDR": f"127.0.0.1:{free_port()}",
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(blocker / "data"),
        },
    )
    assert result.returncode == 2
    assert f"storage.filesystem.rootdirectory: {blocker / 'data'} is not writable" in result.stderr
