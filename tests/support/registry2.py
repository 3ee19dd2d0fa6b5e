"""Start the real registry:2 (CNCF Distribution 2.8, Debian's `docker-registry`) as a peer in tests.

cargobay promises to serve registry:2's data directory and htpasswd file unchanged, so the
interchange tests run both, one after the other, on the same root directory and the same
htpasswd file. registry:2 is configured the way the cargobay test servers are (filesystem
storage, delete enabled, htpasswd auth, loopback only), plus the `http.secret` it wants.
"""

import os
import secrets
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.server import free_port, wait_until_ready
from tests.support.tools import require_tool

STOP_SECONDS = 10


@dataclass
class Registry2:
    url: str
    port: int
    root: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, as skopeo names the registry."""
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM (registry:2 drains and exits), then SIGKILL if it is still running."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def registry2_config(root: Path, port: int, htpasswd: Path) -> dict[str, Any]:
    return {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        "auth": {"htpasswd": {"realm": "registry2-test", "path": str(htpasswd)}},
    }


def start_registry2(workdir: Path, root: Path, htpasswd: Path) -> Registry2:
    """Run `docker-registry serve CONFIG` on a free loopback port and wait until `/v2/` answers."""
    binary = require_tool("docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = workdir / f"registry2-{port}.yml"
    config_path.write_text(yaml.safe_dump(registry2_config(root, port, htpasswd)))
    log_path = workdir / f"registry2-{port}.log"
    # REGISTRY_* variables override registry:2's config file; none from the caller may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    server = Registry2(f"http://127.0.0.1:{port}", port, root, log_path, process)
    wait_until_ready(server, "docker-registry")
    return server
