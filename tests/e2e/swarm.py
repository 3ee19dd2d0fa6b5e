"""Swarm mode on the private test engine, and stacks deployed on it, kept on loopback.

`docker swarm init` on its own would (a) listen for cluster traffic on every interface and
(b) create the host bridge `docker_gwbridge`, a name any other engine on the machine would
share, with host-mode published ports bound to 0.0.0.0. So before the init this module
creates `docker_gwbridge` itself (the documented way to customise it) under a unique Linux
name, with published ports bound to 127.0.0.1 by default, no masquerading and no
inter-container traffic; and it initialises the swarm with listen and advertise addresses
on 127.0.0.1. Host-mode ports are what the shipped stack file uses, and the only ones that
work without IPVS (TESTING.md). Leaving the swarm removes that bridge again.
"""

import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.docker_engine import DockerCLI, DockerCommandError

GWBRIDGE = "docker_gwbridge"
SETTLE_SECONDS = 90  # a task becoming healthy, a stack's containers and network going away
POLL_SECONDS = 0.5


@contextmanager
def swarm_mode(docker: DockerCLI) -> Iterator[None]:
    """A one-node swarm on 127.0.0.1 for the duration; on exit the engine is back as it was."""
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if state != "inactive":
        raise RuntimeError(f"the test engine is already in swarm state {state!r}; a previous run leaked?")
    bridge = f"cbgw{secrets.token_hex(4)}"  # Linux interface names are at most 15 characters
    docker(
        "network",
        "create",
        "--driver=bridge",
        f"--opt=com.docker.network.bridge.name={bridge}",
        "--opt=com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
        "--opt=com.docker.network.bridge.enable_icc=false",
        "--opt=com.docker.network.bridge.enable_ip_masquerade=false",
        GWBRIDGE,
    )
    try:
        init = docker(
            "swarm", "init", "--advertise-addr=127.0.0.1", "--listen-addr=127.0.0.1:2377", check=False
        )
        if init.returncode != 0:
            raise RuntimeError(
                "docker swarm init failed; only one engine per machine can be in swarm mode "
                f"(ports 2377, 7946, 4789), is another one?\n{init.stderr}"
            )
        yield
    finally:
        docker("swarm", "leave", "--force", check=False)
        _remove_gwbridge(docker, bridge)


def _remove_gwbridge(docker: DockerCLI, bridge: str) -> None:
    """Remove our docker_gwbridge; its endpoints can take a moment to go after leaving the swarm."""
    deadline = time.monotonic() + SETTLE_SECONDS
    for _ in range(int(SETTLE_SECONDS / POLL_SECONDS)):
        if docker("network", "rm", GWBRIDGE, check=False).returncode == 0 or time.monotonic() > deadline:
            break
        if not docker("network", "ls", "--quiet", "--filter", f"name=^{GWBRIDGE}$").stdout.strip():
            break
        time.sleep(POLL_SECONDS)
    # whatever the engine did, the host must not keep the link
    subprocess.run(["ip", "link", "delete", bridge], check=False, capture_output=True)


@dataclass(frozen=True)
class Stack:
    """A stack deployed from files, with the environment its `${...}` variables come from."""

    name: str
    files: tuple[Path, ...]
    env: Mapping[str, str]

    def service(self, short_name: str) -> str:
        return f"{self.name}_{short_name}"


def deploy_stack(docker: DockerCLI, stack: Stack) -> None:
    """`docker stack deploy -c FILE... NAME`, not resolving images: they exist only locally."""
    files = [arg for path in stack.files for arg in ("--compose-file", str(path))]
    docker("stack", "deploy", "--resolve-image=never", *files, stack.name, extra_env=stack.env)


def wait_until_healthy(docker: DockerCLI, stack: Stack, service: str) -> str:
    """Wait (bounded) until the service's one task runs a healthy container; returns its ID.

    On a timeout the error carries what `docker service ps` and the service log say, which
    is what a user would look at.
    """
    name = stack.service(service)
    deadline = time.monotonic() + SETTLE_SECONDS
    for _ in range(int(SETTLE_SECONDS / POLL_SECONDS)):
        healthy = docker(
            "ps",
            "--quiet",
            "--no-trunc",
            "--filter",
            f"label=com.docker.swarm.service.name={name}",
            "--filter",
            "health=healthy",
        ).stdout.split()
        if len(healthy) == 1:
            return healthy[0]
        if len(healthy) > 1:
            raise AssertionError(f"{name}: {len(healthy)} healthy containers, the stack asks for one")
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    tasks = docker("service", "ps", "--no-trunc", name, check=False)
    logs = docker("service", "logs", "--tail", "40", name, check=False)
    raise AssertionError(
        f"{name} not healthy within {SETTLE_SECONDS}s\n{tasks.stdout}{tasks.stderr}\n"
        f"log:\n{logs.stdout}{logs.stderr}"
    )


def remove_stack(docker: DockerCLI, stack: Stack) -> None:
    """`docker stack rm`, then wait (bounded) until its containers and networks are really gone.

    `stack rm` returns at once; deploying again before the old network is removed is a known
    way to make the next deploy fail, and the old container could still hold the data.
    """
    docker("stack", "rm", stack.name)
    label = f"label=com.docker.stack.namespace={stack.name}"
    deadline = time.monotonic() + SETTLE_SECONDS
    for _ in range(int(SETTLE_SECONDS / POLL_SECONDS)):
        containers = docker("ps", "--all", "--quiet", "--filter", label).stdout.split()
        networks = docker("network", "ls", "--quiet", "--filter", label).stdout.split()
        if not containers and not networks:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"stack {stack.name} still has containers or networks after {SETTLE_SECONDS}s")


def remove_stack_quietly(docker: DockerCLI, stack: Stack) -> None:
    """Teardown: remove the stack if it is there, without masking the test's own failure."""
    with suppress(DockerCommandError, AssertionError):
        if stack.name in docker("stack", "ls", "--format", "{{.Name}}").stdout.split():
            remove_stack(docker, stack)
