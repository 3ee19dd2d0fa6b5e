"""Start a real cargobay server process on a loopback port, as a user would run it."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests
import yaml

from cargobay.auth.htpasswd import hash_password

USER, PASSWORD = "alice", "wonderland-42"
STARTUP_SECONDS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    # cost 5 is what `htpasswd -B` writes by default, and keeps the suite quick
    path.write_text("".join(f"{u}:{hash_password(p, cost=5)}\n" for u, p in users.items()))


@dataclass
class RegistryServer:
    url: str
    port: int
    root: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    credentials: tuple[str, str] | None
    ca: Path | None = None  # the certificate to trust when serving TLS
    sessions: list[requests.Session] = field(default_factory=list)

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, as docker and skopeo name the registry."""
        return f"127.0.0.1:{self.port}"

    def session(self, credentials: tuple[str, str] | bool | None = True) -> requests.Session:
        """A client session; by default with the server's credentials."""
        session = requests.Session()
        session.trust_env = False  # loopback only: no proxies, and no CA bundle overriding `verify`
        if self.ca is not None:
            session.verify = str(self.ca)
        if credentials is True:
            session.auth = self.credentials
        elif credentials:
            session.auth = credentials
        self.sessions.append(session)
        return session

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        for session in self.sessions:
            session.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def server_config(
    root: Path, port: int, htpasswd: Path | None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info"},
        "http": {"addr": f"127.0.0.1:{port}"},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "cargobay-test", "path": str(htpasswd)}}
    for dotted, value in (overrides or {}).items():
        node = config
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return config


def start_server(
    workdir: Path,
    *,
    auth: bool = True,
    root: Path | None = None,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    scheme: str = "http",
    ca: Path | None = None,
    workers: int = 1,
) -> RegistryServer:
    """Start `cargobay serve CONFIG` and wait until `/v2/` answers.

    `overrides` maps dotted config keys to values (None removes a key). One worker process
    by default, so that the process a test measures is the one serving.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    root = root or workdir / "data"
    htpasswd = None
    if auth:
        htpasswd = workdir / "htpasswd"
        if not htpasswd.exists():
            write_htpasswd(htpasswd, {USER: PASSWORD})
    config_path = workdir / f"config-{port}.yml"
    config_path.write_text(yaml.safe_dump(server_config(root, port, htpasswd, overrides)))
    log_path = workdir / f"server-{port}.log"
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    process_env.update(env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cargobay", "serve", "--workers", str(workers), str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=process_env,
        )
    server = RegistryServer(
        url=f"{scheme}://127.0.0.1:{port}",
        port=port,
        root=root,
        config_path=config_path,
        log_path=log_path,
        process=process,
        credentials=(USER, PASSWORD) if auth else None,
        ca=ca,
    )
    wait_until_ready(server, verify=str(ca) if ca else True)
    return server


def wait_until_ready(
    server: "RegistryServer | ServerProcess", label: str = "cargobay", verify: str | bool = True
) -> None:
    """Poll `/v2/` (401 without credentials means it is serving) for at most STARTUP_SECONDS."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{label} exited with {server.process.returncode}:\n{server.log()}")
        try:
            if requests.get(f"{server.url}/v2/", timeout=1, verify=verify).status_code in (200, 401):
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{label} did not answer within {STARTUP_SECONDS}s:\n{server.log()}")


class ServerProcess(Protocol):
    """What `wait_until_ready` needs of a registry process, cargobay's or registry:2's."""

    url: str
    process: "subprocess.Popen[bytes]"

    def log(self) -> str: ...

    def stop(self) -> None: ...


def status_within_seconds(
    server: RegistryServer, credentials: tuple[str, str], expected: int, seconds: float = 10
) -> bool:
    """Whether `/v2/` answers `expected` for these credentials within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.session(credentials).get(f"{server.url}/v2/").status_code == expected:
            return True
        time.sleep(0.2)
    return False
