"""Start cargobay and registry:2 with equivalent settings, and stop them for sure.

Both get: filesystem storage in a fresh directory, the same htpasswd file (bcrypt
cost 5, what `htpasswd -B` writes) or no auth at all, a free loopback port, and
their default logging (level info, access log on), since that is what users run.
registry:2 also needs `http.secret`; cargobay ignores that key, so the two config
files differ only in it and in the realm's name.

Every server is started with PR_SET_PDEATHSIG, so it dies with the benchmark even
when the benchmark itself is killed; `stop` signals the whole process tree we
started, by PID, and waits.
"""

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import procmetrics

USER = "bench"
PASSWORD = "bench-" + "x" * 12  # loopback only, a throwaway server; fixed so runs are comparable
HTPASSWD_COST = 5
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0

CARGOBAY = "cargobay"
REGISTRY2 = "registry2"
LABELS = {CARGOBAY: "cargobay", REGISTRY2: "registry:2"}


class ServerError(RuntimeError):
    """A server would not start or answered wrongly at startup; the message has its log's tail."""


@dataclass
class Server:
    kind: str  # CARGOBAY or REGISTRY2
    url: str
    root: Path
    log_path: Path
    process: "subprocess.Popen[bytes]"
    credentials: tuple[str, str] | None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGINT/SIGTERM to the root, wait; then SIGKILL whatever of the tree is left."""
        tree = procmetrics.process_tree(self.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT if self.kind == CARGOBAY else signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_SECONDS)
        for pid in tree[1:]:  # workers that outlived their parent: only PIDs seen in our tree
            if not procmetrics.wait_for_exit(pid, 2.0):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def write_htpasswd(path: Path) -> None:
    """One bcrypt cost-5 entry, written by `htpasswd -B -C 5` when present, else by cargobay's hasher."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd is not None:
        subprocess.run(
            [htpasswd, "-c", "-B", "-C", str(HTPASSWD_COST), "-b", str(path), USER, PASSWORD],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return
    from cargobay.auth.htpasswd import hash_password

    path.write_text(f"{USER}:{hash_password(PASSWORD, cost=HTPASSWD_COST)}\n")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_config(root: Path, port: int, htpasswd: Path | None, realm: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(root)}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": realm, "path": str(htpasswd)}}
    return config


def registry2_binary() -> str:
    path = shutil.which("docker-registry")
    if path is None:
        raise ServerError(
            "`docker-registry` (registry:2) is not on PATH: install Debian's docker-registry package "
            "(scripts/install-system-packages.sh does)"
        )
    return path


def cargobay_has_workers_option() -> bool:
    """Whether this cargobay's `serve` takes `--workers` (it is being added as this is written)."""
    result = subprocess.run(
        [sys.executable, "-m", "cargobay", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return "--workers" in result.stdout


def versions() -> dict[str, str]:
    from cargobay import __version__

    # "/usr/bin/docker-registry github.com/docker/distribution 2.8.2+ds1": keep the last word
    words = subprocess.run(
        [registry2_binary(), "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.split()
    return {CARGOBAY: __version__, REGISTRY2: words[-1] if words else "unknown"}


def _die_with_parent() -> None:
    """In the child before exec: ask the kernel to SIGTERM it when the benchmark dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start(kind: str, workdir: Path, htpasswd: Path | None, workers: int | None) -> Server:
    """Start one server in `workdir` (data in `workdir/data`) and wait until `/v2/` answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "data"
    port = free_port()
    config = base_config(root, port, htpasswd, realm=f"{kind}-bench")
    if kind == REGISTRY2:
        config["http"]["secret"] = secrets.token_hex(16)
        command = [registry2_binary(), "serve"]
    else:
        command = [sys.executable, "-m", "cargobay", "serve"]
        if workers is not None:
            command += ["--workers", str(workers)]
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    command.append(str(config_path))
    log_path = workdir / "server.log"
    # REGISTRY_* variables override either server's config; none from the caller may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    preexec: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir, preexec_fn=preexec
        )
    credentials = (USER, PASSWORD) if htpasswd is not None else None
    server = Server(kind, f"http://127.0.0.1:{port}", root, log_path, process, credentials)
    try:
        _wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_ready(server: Server) -> None:
    """Poll `/v2/` (401 without credentials means it is serving) for at most STARTUP_SECONDS."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(
                f"{LABELS[server.kind]} exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/v2/", timeout=1) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError):
            status = 0
        if status in (200, 401):
            if (status == 401) != (server.credentials is not None):
                raise ServerError(f"{LABELS[server.kind]} answered /v2/ with {status}: auth is not as asked")
            return
        time.sleep(0.05)
    raise ServerError(f"{LABELS[server.kind]} did not answer within {STARTUP_SECONDS}s:\n{server.log_tail()}")
