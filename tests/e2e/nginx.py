"""Real nginx (Debian's) in front of a registry, with the site file the project ships.

The site file is included as it is, except for the two lines a test must change: the
`listen 80` port (tests cannot take port 80, and listen on loopback only) and the upstream
`127.0.0.1:5000` (the test registry's port). Each substitution must match exactly once, so a
change to the shipped file that the test would silently stop covering fails here instead.
nginx runs in the foreground (`daemon off`) with its own prefix, pid file, logs and temp
directories, as a child process that the fixture stops by its PID. The prefix is laid out
as Debian's /etc/nginx (nginx.conf includes sites-enabled/*), so it can also be handed to
`deploy/install.sh --nginx-dir`, which installs the site there and reloads this nginx.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.support.tools import unavailable

SHIPPED_LISTEN = "listen 80;"
SHIPPED_UPSTREAM = "server 127.0.0.1:5000;"
READY_SECONDS = 15
STOP_SECONDS = 10

MAIN_CONFIG = """\
daemon off;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 1024;
}}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/temp/client_body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {prefix}/sites-enabled/*;
}}
"""


@dataclass(frozen=True)
class Nginx:
    host: str  # 127.0.0.1:PORT, as docker names the registry behind it
    prefix: Path
    process: "subprocess.Popen[bytes]"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def reload(self) -> None:
        """What `nginx -s reload` does: SIGHUP to the master, which re-reads nginx.conf."""
        self.process.send_signal(signal.SIGHUP)

    def error_log(self) -> str:
        with suppress(OSError):
            return (self.prefix / "error.log").read_text(errors="replace")
        return "(no error log)"


def site_config(shipped: Path, listen_port: int, upstream_port: int) -> str:
    """The shipped site with only the listen port (on loopback) and the upstream port changed."""
    text = shipped.read_text()
    for old in (SHIPPED_LISTEN, SHIPPED_UPSTREAM):
        if text.count(old) != 1:
            raise AssertionError(f"{shipped} should contain {old!r} exactly once; the test substitutes it")
    return text.replace(SHIPPED_LISTEN, f"listen 127.0.0.1:{listen_port};").replace(
        SHIPPED_UPSTREAM, f"server 127.0.0.1:{upstream_port};"
    )


@contextmanager
def running_nginx(prefix: Path, shipped_site: Path, listen_port: int, upstream_port: int) -> Iterator[Nginx]:
    """Write a private nginx.conf that includes the site, check it with `nginx -t`, run nginx."""
    (prefix / "sites-enabled").mkdir(parents=True)
    (prefix / "sites-enabled" / shipped_site.name).write_text(
        site_config(shipped_site, listen_port, upstream_port)
    )
    with serving_nginx(prefix, listen_port) as nginx:
        yield nginx


@contextmanager
def serving_nginx(prefix: Path, listen_port: int) -> Iterator[Nginx]:
    """Run nginx on the sites already in `prefix`/sites-enabled; ready once `listen_port` accepts.

    `prefix`/nginx.conf is written here; the sites are the caller's, and one of them must
    listen on 127.0.0.1:`listen_port`.
    """
    command = nginx_command(prefix)
    checked = check_config(command)
    if checked.returncode != 0:
        raise AssertionError(f"nginx -t rejects the configuration in {prefix}:\n{checked.stderr}")
    with (prefix / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    nginx = Nginx(host=f"127.0.0.1:{listen_port}", prefix=prefix, process=process)
    try:
        _wait_until_listening(nginx, listen_port)
        yield nginx
    finally:
        _stop(process)


def nginx_command(prefix: Path) -> list[str]:
    """Write `prefix`/nginx.conf (including `prefix`/sites-enabled/*); the command that runs it."""
    binary = shutil.which("nginx")
    if binary is None:
        unavailable("`nginx` is not on PATH (install Debian package 'nginx')")
    (prefix / "sites-enabled").mkdir(parents=True, exist_ok=True)
    (prefix / "temp").mkdir(exist_ok=True)
    config = prefix / "nginx.conf"
    config.write_text(MAIN_CONFIG.format(prefix=prefix))
    # -e: the error log before the config is read; Debian's default is /var/log/nginx
    return [binary, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")]


def check_config(command: list[str]) -> "subprocess.CompletedProcess[str]":
    """`nginx -t`: parse the configuration, load its certificates, try its listen addresses."""
    return subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30, check=False)


def _wait_until_listening(nginx: Nginx, port: int) -> None:
    deadline = time.monotonic() + READY_SECONDS
    for _ in range(READY_SECONDS * 20):
        if nginx.process.poll() is not None:
            raise RuntimeError(f"nginx exited with {nginx.process.returncode}:\n{nginx.error_log()}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on port {port} within {READY_SECONDS}s:\n{nginx.error_log()}")


def _stop(process: "subprocess.Popen[bytes]") -> None:
    """SIGQUIT is nginx's graceful stop (the master waits for its workers); SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            # its own session (start_new_session): the group is the master and its workers only
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)
