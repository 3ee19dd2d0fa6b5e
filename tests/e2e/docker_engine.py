"""A private, throw-away Docker engine (Debian's `dockerd` 20.10) for end-to-end tests.

Why a private engine rather than whatever answers on /var/run/docker.sock: the tests then
see only their own images, and stopping it removes everything they made. It is started
beside any other engine on the machine without disturbing it (TESTING.md): its own data
root, exec root, pidfile, socket, containerd namespaces and bridge; never `--bridge=none`
(that deletes `docker0`); and `--iptables=false --ip-forward=false` so it changes no host
firewall or sysctl. Containers run with `--network=none`: nothing but the engine itself
talks to the network, and it only talks to the registry on loopback.
"""

import io
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = ("sh", "cat", "echo", "ls", "mkdir", "head", "printf", "sha256sum", "true")
REQUIRED_TOOLS = {"dockerd": "docker.io", "containerd": "containerd", "runc": "runc", "docker": "docker.io"}
READY_SECONDS = 60
STOP_SECONDS = 30
COMMAND_SECONDS = 180
# Paths outside its own directories that dockerd 20.10 and containerd create on first start;
# removed afterwards if they did not exist before (and, for directories, are empty again).
HOST_LEFTOVERS = (
    Path("/run/containerd/s"),
    Path("/run/containerd"),
    Path("/run/docker/plugins"),
    Path("/run/docker"),
    Path("/etc/docker/key.json"),
)


class DockerCommandError(RuntimeError):
    """A docker CLI command failed; carries its output so the test report says why."""


def unavailable_reason() -> str | None:
    """Why a private engine cannot run on this machine, or None if it can."""
    missing = [f"`{tool}` (Debian {pkg})" for tool, pkg in REQUIRED_TOOLS.items() if not shutil.which(tool)]
    if not shutil.which("ip"):
        missing.append("`ip` (Debian iproute2)")
    if not BUSYBOX.is_file():
        missing.append(f"`{BUSYBOX}` (Debian busybox-static)")
    if missing:
        return "not installed: " + ", ".join(missing)
    if not is_static_elf(BUSYBOX):
        return f"{BUSYBOX} is dynamically linked; install Debian busybox-static"
    if os.geteuid() != 0:
        return "dockerd must run as root"
    return None


def is_static_elf(path: Path) -> bool:
    """True when the ELF64 file has no program interpreter, so it runs in an empty rootfs."""
    with path.open("rb") as file:
        header = file.read(64)
        if header[:5] != b"\x7fELF\x02":
            return False
        (phoff,) = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        file.seek(phoff)
        table = file.read(phentsize * phnum)
    pt_interp = 3
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != pt_interp for i in range(phnum))


@dataclass(frozen=True)
class DockerCLI:
    """The docker client bound to one engine and one private DOCKER_CONFIG (login creds stay there)."""

    socket_path: Path
    config_dir: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(
            DOCKER_HOST=f"unix://{self.socket_path}",
            DOCKER_CONFIG=str(self.config_dir),
            DOCKER_BUILDKIT="0",  # the classic builder: there is no buildx here
            DOCKER_CLI_HINTS="false",
        )
        return env

    def __call__(
        self,
        *args: str,
        stdin: str | bytes = b"",
        check: bool = True,
        timeout: float = COMMAND_SECONDS,
        extra_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker ARGS` (bounded by `timeout`); with `check`, a failure raises with its output.

        `extra_env` is for commands that read variables themselves, such as the `${...}` in a
        stack file that `docker stack deploy` fills in.
        """
        self.config_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["docker", *args],
            input=stdin.encode() if isinstance(stdin, str) else stdin,
            capture_output=True,
            env={**self.env(), **(extra_env or {})},
            timeout=timeout,
            check=False,
        )
        result = subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise DockerCommandError(
                f"docker {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def login(
        self, host: str, user: str, password: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self("login", "--username", user, "--password-stdin", host, stdin=password, check=check)


@dataclass(frozen=True)
class DockerEngine:
    root: Path
    socket_path: Path
    pid: int
    log_path: Path

    def cli(self, config_dir: Path) -> DockerCLI:
        return DockerCLI(self.socket_path, config_dir)

    def log_tail(self, lines: int = 40) -> str:
        with suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


@contextmanager
def running_engine() -> Iterator[DockerEngine]:
    """Start a private dockerd, wait until it answers, and on exit stop it and remove all it made."""
    # under /tmp, not pytest's deeper tmp dirs: unix socket paths must stay under 108 bytes
    root = Path(tempfile.mkdtemp(prefix="cargobay-dockerd-", dir="/tmp"))
    leftovers = [path for path in HOST_LEFTOVERS if not path.exists()]
    bridge = f"cbay{secrets.token_hex(4)}"  # interface names are at most 15 characters
    process: subprocess.Popen[bytes] | None = None
    try:
        added = subprocess.run(
            ["ip", "link", "add", bridge, "type", "bridge"], capture_output=True, text=True
        )
        if added.returncode != 0:
            raise RuntimeError(f"cannot create bridge {bridge} for dockerd: {added.stderr.strip()}")
        process, engine = _start(root, bridge)
        _wait_until_ready(engine, process)
        yield engine
    finally:
        if process is not None:
            _stop(process, root)
        _unmount_under(root)
        subprocess.run(["ip", "link", "delete", bridge], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        _remove_leftovers(leftovers)


def _storage_driver(root: Path) -> str:
    """overlay2 when the kernel can mount overlayfs on the data root's file system, else vfs.

    vfs copies every layer in full for every container and build step: building cargobay's
    image takes about four times as long with it. The probe mounts a tiny overlay where the
    data root will be, which is what overlay2 needs; where that fails (overlayfs on overlayfs,
    no overlay module) the slow but universal vfs is used.
    """
    probe = root / "overlay-probe"
    lower, upper, work, merged = (probe / name for name in ("lower", "upper", "work", "merged"))
    for directory in (lower, upper, work, merged):
        directory.mkdir(parents=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    try:
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], capture_output=True, timeout=30
        )
        if mounted.returncode != 0:
            return "vfs"
        subprocess.run(["umount", str(merged)], check=False, capture_output=True, timeout=30)
        return "overlay2"
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _start(root: Path, bridge: str) -> tuple[subprocess.Popen[bytes], DockerEngine]:
    sock, log_path = root / "docker.sock", root / "dockerd.log"
    command = [
        "dockerd",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"--host=unix://{sock}",
        f"--storage-driver={_storage_driver(root)}",
        f"--bridge={bridge}",
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        f"--containerd-namespace={bridge}",
        f"--containerd-plugins-namespace={bridge}-plugins",
    ]
    # no proxy settings: pushes and pulls must go straight to the loopback registry
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("DOCKER_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return process, DockerEngine(root=root, socket_path=sock, pid=process.pid, log_path=log_path)


def _ping(sock: Path) -> bool:
    """True once the engine's API answers `GET /_ping` with 200 on its socket."""
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(2)
            conn.connect(str(sock))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = conn.recv(4096).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status_line.split()[1:2] == [b"200"]


def _wait_until_ready(engine: DockerEngine, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    for _ in range(READY_SECONDS * 10):
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited with {process.returncode}:\n{engine.log_tail()}")
        if _ping(engine.socket_path):
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise RuntimeError(f"dockerd did not answer within {READY_SECONDS}s:\n{engine.log_tail()}")


def _stop(process: subprocess.Popen[bytes], root: Path) -> None:
    """SIGTERM by PID (dockerd then stops its containerd), SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_SECONDS)
    # a killed dockerd may leave its own containerd behind: stop it by its pidfile, if it is ours
    with suppress(OSError, ValueError):
        pid = int((root / "exec" / "containerd" / "containerd.pid").read_text())
        if str(root).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


def _unmount_under(root: Path) -> None:
    """Unmount what a crashed engine left mounted below `root` (dockerd bind-mounts its data root)."""
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((m for m in mounts if m == str(root) or m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def _remove_leftovers(paths: list[Path]) -> None:
    """Remove host paths our engine created, unless another engine (started since) may use them."""
    if _engines_running():
        return
    for path in paths:
        with suppress(OSError):  # a directory another engine uses now is not empty: keep it
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()


def _engines_running() -> bool:
    """True if any dockerd or containerd runs on the machine (ours are stopped by now)."""
    names = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with suppress(OSError):
            names.add(comm.read_text().strip())
    return not names.isdisjoint({"dockerd", "containerd"})


def import_busybox_image(docker: DockerCLI, tag: str) -> str:
    """`docker import` a one-layer shell image of Debian's static busybox; returns its image ID.

    No registry is involved: the image is built from a tar made here, so nothing is pulled.
    The tag is written to /etc/base-image, so bases with different tags have different layers
    (the engine remembers where it pushed a layer before and would mount instead of pushing).
    """
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        marker = f"{tag}\n".encode()
        info = tarfile.TarInfo("etc/base-image")
        info.size, info.mode = len(marker), 0o644
        tar.addfile(info, io.BytesIO(marker))
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = BUSYBOX.stat().st_size, 0o755
        with BUSYBOX.open("rb") as binary:
            tar.addfile(info, binary)
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    imported = docker("import", "--change", 'CMD ["/bin/sh"]', "-", tag, stdin=archive.getvalue())
    return imported.stdout.strip()
