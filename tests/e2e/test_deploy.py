"""Issue 3's deployment, for real: the image, the Swarm stack and the nginx site the project ships.

The path the CI team takes, each step with the real tool: build cargobay's image from the
Dockerfile (classic builder, a Debian bookworm base made here, no network in the build);
`docker stack deploy` the shipped deploy/docker-registry.yaml on a one-node swarm, with
the data and auth directories the file documents; put real nginx with the shipped
deploy/docker-registry.nginx in front; then through nginx: log in, push a big multi-layer
image, pull it back and run it; 3 pushers and 10 pullers at once for a minute; remove the
stack and deploy it again (the data stays); add a user to the htpasswd file while it runs.

The tests run in order and share one deployment (module fixtures), as a user's steps do;
`-x` stops at the first broken step. Everything listens on 127.0.0.1 only, and everything
made is removed afterwards: the stack, the swarm, nginx, the data home and the images.
"""

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from random import Random

import pytest
import requests

from cargobay import __version__
from tests.e2e.cargobay_image import build_context, build_image, import_debian_base
from tests.e2e.docker_engine import DockerCLI, DockerEngine, import_busybox_image
from tests.e2e.nginx import Nginx, running_nginx, serving_nginx
from tests.e2e.swarm import (
    Stack,
    deploy_stack,
    remove_stack,
    remove_stack_quietly,
    swarm_mode,
    wait_until_healthy,
)
from tests.e2e.test_concurrent_clients import (
    NAME as LOAD_REPOSITORY,
)
from tests.e2e.test_concurrent_clients import (
    PULLERS,
    PUSHERS,
    SHARED_LAYERS,
    TAGS,
    Ledger,
    check,
    p99,
    pull_image,
    push_image,
    run_worker,
    upload_blob,
)
from tests.e2e.test_docker import LAYER_STATUS, push
from tests.support.client import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, image_manifest, sha256
from tests.support.registry2 import start_registry2
from tests.support.server import PASSWORD, USER, free_port, write_htpasswd
from tests.support.tools import require_tool

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
STACK_FILE = REPO / "deploy" / "docker-registry.yaml"
NGINX_SITE = REPO / "deploy" / "docker-registry.nginx"
IMAGE_UID = 10001  # the Dockerfile's user; install.sh and the docs give the data directory to it
STACK_NAME = "cargobay-e2e"
SERVICE = "registry"
HTPASSWD_FILE = "docker-registry.htpasswd"  # the name REGISTRY_AUTH_HTPASSWD_PATH has in the stack file
MIB = 1 << 20
BIG_LAYER_BYTES = 100 * MIB
LOAD_SECONDS = 60.0
LOAD_HARD_LIMIT = LOAD_SECONDS + 90.0  # past this a worker counts as hung and the test fails
HTTP_TIMEOUT = (5, 60)
RELOAD_SECONDS = 30  # how long a new htpasswd user may take to be accepted
ACCEPT_MANIFESTS = ", ".join((DOCKER_MANIFEST, OCI_MANIFEST, OCI_INDEX))
# four layers: the busybox base, the 100 MiB file, the secret, and a checksum list made by RUN
BIG_IMAGE_DOCKERFILE = """\
FROM {base}
COPY big.bin /data/big.bin
COPY secret.txt /data/secret.txt
RUN cd /data && sha256sum big.bin secret.txt > SHA256SUMS
CMD ["cat", "/data/secret.txt"]
"""
BIG_IMAGE_LAYERS = 4


@dataclass(frozen=True)
class Deployment:
    """The deployed stack and the host directories it uses, laid out as the stack file says."""

    stack: Stack
    home: Path
    port: int

    @property
    def htpasswd(self) -> Path:
        return self.home / "auth" / HTPASSWD_FILE


@dataclass
class Inventory:
    """Every manifest the tests pushed, by repository and digest: what a redeploy must keep."""

    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)


@pytest.fixture(scope="module")
def docker(docker_engine: DockerEngine) -> Iterator[DockerCLI]:
    """The docker CLI with a private DOCKER_CONFIG; the images built here are removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="cargobay-deploy-docker-config-") as config:
        cli = docker_engine.cli(Path(config))
        yield cli
        cli("container", "prune", "--force", check=False)
        cli("image", "prune", "--all", "--force", check=False)


@pytest.fixture(scope="module")
def cargobay_image(docker: DockerCLI) -> str:
    """cargobay's image built from the repository's Dockerfile on a local Debian bookworm base."""
    base = "localhost/cargobay-e2e/debian-python3:bookworm"
    import_debian_base(docker, base)
    tag = "localhost/cargobay-e2e/cargobay:test"
    with tempfile.TemporaryDirectory(prefix="cargobay-image-") as scratch:
        build_image(docker, build_context(Path(scratch)), base, tag)
    return tag


@pytest.fixture(scope="module")
def swarm(docker: DockerCLI) -> Iterator[None]:
    """Swarm mode on the test engine, on loopback; the engine leaves it when the module ends."""
    with swarm_mode(docker):
        yield


@pytest.fixture(scope="module")
def deployment(docker: DockerCLI, cargobay_image: str, swarm: None) -> Iterator[Deployment]:
    """The shipped stack file deployed with a private data home and port, healthy before use.

    The home is made as the stack file's comment tells users: registry/ owned by the image's
    user, auth/ holding the htpasswd file readable by it. It is a plain temporary directory,
    not pytest's (which keeps old runs): the load test leaves gigabytes in it.
    """
    home = Path(tempfile.mkdtemp(prefix="cargobay-deploy-home-", dir="/tmp"))
    home.chmod(0o755)
    try:
        (home / "registry").mkdir(mode=0o750)
        os.chown(home / "registry", IMAGE_UID, IMAGE_UID)
        (home / "auth").mkdir(mode=0o755)
        port = free_port()
        env = {"CARGOBAY_IMAGE": cargobay_image, "CARGOBAY_PORT": str(port), "CARGOBAY_HOME": str(home)}
        deployed = Deployment(Stack(STACK_NAME, (STACK_FILE,), env), home, port)
        write_htpasswd(deployed.htpasswd, {USER: PASSWORD})
        os.chown(deployed.htpasswd, 0, IMAGE_UID)
        deployed.htpasswd.chmod(0o640)
        try:
            deploy_stack(docker, deployed.stack)
            wait_until_healthy(docker, deployed.stack, SERVICE)
            yield deployed
        finally:
            remove_stack_quietly(docker, deployed.stack)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def proxy(deployment: Deployment) -> Iterator[Nginx]:
    """nginx with the shipped site in front of the stack's published port."""
    with (
        tempfile.TemporaryDirectory(prefix="cargobay-deploy-nginx-") as prefix,
        running_nginx(Path(prefix), NGINX_SITE, free_port(), deployment.port) as nginx,
    ):
        yield nginx


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return Inventory()


def http_session(credentials: tuple[str, str] | None = (USER, PASSWORD)) -> requests.Session:
    """A requests session for loopback: no proxies or CA bundles from the environment."""
    session = requests.Session()
    session.trust_env = False
    session.auth = credentials
    return session


# 1. The image ---------------------------------------------------------------------------


def test_image_runs_as_its_user_without_compilers_and_refuses_an_unwritable_data_dir(
    docker: DockerCLI, cargobay_image: str, tmp_path: Path
) -> None:
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", cargobay_image).stdout)
    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert "5000/tcp" in config["ExposedPorts"]
    assert "/var/lib/registry" in config["Volumes"]
    assert config["Healthcheck"]["Test"] == ["CMD", "cargobay", "healthcheck"]

    def run(*args: str, entrypoint: str | None = None) -> str:
        chosen = ("--entrypoint", entrypoint) if entrypoint else ()
        return docker("run", "--rm", "--network=none", *chosen, cargobay_image, *args).stdout

    assert run("version").strip() == f"cargobay {__version__}"
    assert run("-u", entrypoint="id").strip() == str(IMAGE_UID)
    compilers = "for c in gcc cc c++ g++ cpp clang; do command -v $c; done; true"
    assert run("-c", compilers, entrypoint="sh") == ""

    # A data directory the image's user cannot write: the container must stop at once, saying why.
    data = tmp_path / "root-owned"
    data.mkdir(mode=0o755)
    name = f"cargobay-unwritable-{secrets.token_hex(4)}"
    docker(
        "run", "--detach", "--name", name, "--network=none", "-v", f"{data}:/var/lib/registry", cargobay_image
    )
    try:
        state = wait_for_exit(docker, name, seconds=30)
        logs = docker("logs", name)
        output = logs.stdout + logs.stderr
    finally:
        docker("rm", "--force", name, check=False)
    assert state["ExitCode"] != 0, output
    assert "storage.filesystem.rootdirectory" in output, output
    assert "not writable" in output, output
    assert "chown -R 10001:10001 the data directory" in output, output


def wait_for_exit(docker: DockerCLI, container: str, seconds: int) -> dict[str, object]:
    """Poll (bounded) until the container stops; returns its State. A server still up fails."""
    deadline = time.monotonic() + seconds
    for _ in range(seconds * 5):
        state: dict[str, object] = json.loads(
            docker("inspect", "--format", "{{json .State}}", container).stdout
        )
        if not state["Running"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not state["Running"], f"still running after {seconds}s: it should refuse to start"
    return state


# 2. The stack ---------------------------------------------------------------------------


def test_shipped_stack_runs_one_healthy_task_on_loopback(docker: DockerCLI, deployment: Deployment) -> None:
    service = deployment.stack.service(SERVICE)
    tasks = docker("service", "ps", "--format", "{{.DesiredState}} {{.CurrentState}}", service).stdout
    assert [line.split()[:2] for line in tasks.splitlines()] == [["Running", "Running"]], tasks
    spec = json.loads(docker("service", "inspect", "--format", "{{json .Spec}}", service).stdout)
    # what the stack file promises, as Swarm took it
    assert spec["Mode"] == {"Replicated": {"Replicas": 1}}
    task = spec["TaskTemplate"]
    assert task["RestartPolicy"]["Condition"] == "on-failure"
    # pinned to the node with the bind mounts, a constraint this one-node swarm satisfies
    assert task["Placement"]["Constraints"] == ["node.role == manager"]
    health = task["ContainerSpec"]["Healthcheck"]
    assert health["Test"] == ["CMD", "cargobay", "healthcheck"]
    assert health["Interval"] > 0
    assert health["Retries"] > 0
    # never two registries on one directory: not when updating, not when rolling back
    assert spec["UpdateConfig"]["Order"] == "stop-first"
    assert spec["RollbackConfig"]["Order"] == "stop-first"
    environment = dict(item.split("=", 1) for item in task["ContainerSpec"]["Env"])
    assert environment["REGISTRY_AUTH"] == "htpasswd"
    assert environment["REGISTRY_AUTH_HTPASSWD_PATH"] == f"/auth/{HTPASSWD_FILE}"
    ports = spec["EndpointSpec"]["Ports"]
    assert [(p["TargetPort"], p["PublishedPort"], p["PublishMode"]) for p in ports] == [
        (5000, deployment.port, "host")
    ]
    mounts = {m["Target"]: m for m in task["ContainerSpec"]["Mounts"]}
    assert mounts["/var/lib/registry"]["Source"] == str(deployment.home / "registry")
    assert mounts["/auth"]["Source"] == str(deployment.home / "auth")
    assert mounts["/auth"].get("ReadOnly") is True

    answer = http_session(None).get(f"http://127.0.0.1:{deployment.port}/v2/", timeout=HTTP_TIMEOUT)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")


# 3. Through nginx: the docker CLI -------------------------------------------------------


def test_docker_login_push_pull_and_run_through_nginx(
    docker: DockerCLI, proxy: Nginx, inventory: Inventory, tmp_path: Path
) -> None:
    for credentials, status in ((None, 401), ((USER, PASSWORD), 200)):
        answer = http_session(credentials).get(f"{proxy.url}/v2/", timeout=HTTP_TIMEOUT)
        assert answer.status_code == status
        # the site adds the header only where cargobay did not: exactly one, either way
        assert answer.raw.headers.getlist("Docker-Distribution-Api-Version") == ["registry/2.0"]
    wrong = docker.login(proxy.host, USER, f"not-{PASSWORD}", check=False)
    assert wrong.returncode != 0
    assert "unauthorized" in wrong.stderr.lower(), wrong.stderr
    assert "Login Succeeded" in docker.login(proxy.host, USER, PASSWORD).stdout

    base = f"localhost/cargobay-e2e/busybox:{secrets.token_hex(4)}"
    import_busybox_image(docker, base)
    image = f"{proxy.host}/deploy/big:v1"
    big_sha256, secret = build_big_image(docker, base, tmp_path / "context", image)

    digest, layers = push(docker, image)
    assert list(layers.values()) == ["Pushed"] * BIG_IMAGE_LAYERS, layers
    stored = http_session().get(
        f"{proxy.url}/v2/deploy/big/manifests/{digest}",
        headers={"Accept": DOCKER_MANIFEST},
        timeout=HTTP_TIMEOUT,
    )
    check(stored, 200, "GET the pushed manifest")
    assert sha256(stored.content) == digest
    sizes = [layer["size"] for layer in stored.json()["layers"]]
    assert len(sizes) == BIG_IMAGE_LAYERS, sizes
    assert max(sizes) >= BIG_LAYER_BYTES, sizes
    inventory.manifests["deploy/big", digest] = stored.content

    # remove the image and its base, so every layer has to come back through nginx
    docker("rmi", image, base)
    pulled = docker("pull", image).stdout
    assert list(dict(LAYER_STATUS.findall(pulled)).values()) == ["Pull complete"] * BIG_IMAGE_LAYERS, pulled
    assert f"Digest: {digest}" in pulled

    checked = docker(
        "run",
        "--rm",
        "--network=none",
        image,
        "sh",
        "-c",
        "cd /data && sha256sum -c SHA256SUMS && sha256sum big.bin",
    ).stdout
    assert checked == f"big.bin: OK\nsecret.txt: OK\n{big_sha256}  big.bin\n"
    assert docker("run", "--rm", "--network=none", image).stdout == secret


def build_big_image(docker: DockerCLI, base: str, context: Path, tag: str) -> tuple[str, str]:
    """Build the four-layer image with 100 MiB of random bytes; returns their sha256 and the secret.

    Random, so incompressible: the layer stays over 100 MiB when docker gzips it. Made here,
    not in a RUN step, so the test knows what the pulled image must contain.
    """
    context.mkdir()
    big = hashlib.sha256()
    with (context / "big.bin").open("wb") as file:
        for _ in range(BIG_LAYER_BYTES // MIB):
            block = os.urandom(MIB)
            big.update(block)
            file.write(block)
    secret = secrets.token_hex(32)
    (context / "secret.txt").write_text(secret)
    (context / "Dockerfile").write_text(BIG_IMAGE_DOCKERFILE.format(base=base))
    docker("build", "--network=none", "--tag", tag, str(context))
    return big.hexdigest(), secret


# 4. Through nginx: 3 pushers and 10 pullers at once --------------------------------------


def test_three_pushers_and_ten_pullers_through_nginx_for_a_minute(
    docker: DockerCLI, deployment: Deployment, proxy: Nginx, inventory: Inventory, report_figure
) -> None:
    """The concurrent-clients workload of test_concurrent_clients.py, through nginx and the stack.

    Pushers push fresh images under a small pool of tags they overwrite in turn; pullers
    resolve those tags while they move, and check that the manifest is one that was pushed
    under that tag and that every blob's bytes match its digest.
    """
    ledger = Ledger()
    sessions: list[requests.Session] = []

    def session() -> requests.Session:
        sessions.append(http_session())
        return sessions[-1]

    shared = seed_load_repository(session(), proxy.url, ledger)
    started = time.monotonic()
    deadline = started + LOAD_SECONDS

    def worker(name: str, step: Callable[[], None]) -> threading.Thread:
        # daemon: a hung worker must not keep pytest alive after the failure is reported
        return threading.Thread(
            target=run_worker, name=name, args=(name, step, deadline, ledger), daemon=True
        )

    workers = [
        worker(f"pusher{i}", partial(push_image, session(), proxy.url, Random(300 + i), shared, ledger))
        for i in range(PUSHERS)
    ] + [
        worker(f"puller{i}", partial(pull_image, session(), proxy.url, Random(400 + i), ledger))
        for i in range(PULLERS)
    ]
    try:
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(timeout=max(0.0, started + LOAD_HARD_LIMIT - time.monotonic()))
    finally:
        for each in sessions:
            each.close()
    elapsed = time.monotonic() - started
    hung = [thread.name for thread in workers if thread.is_alive()]
    report_figure(load_report(ledger, elapsed))

    assert not hung, f"workers still running after {LOAD_HARD_LIMIT}s: {hung}"
    assert ledger.errors == [], "\n".join(ledger.errors[:20])
    assert elapsed >= LOAD_SECONDS
    assert ledger.pushed_images >= PUSHERS
    assert ledger.pulled_images >= PULLERS
    assert problems_in_nginx_log(proxy) == []
    assert "Traceback" not in service_log(docker, deployment)
    for digest, manifest in ledger.manifests.items():
        inventory.manifests[LOAD_REPOSITORY, digest] = manifest


def seed_load_repository(session: requests.Session, url: str, ledger: Ledger) -> list[bytes]:
    """Push the shared layers and every pooled tag before the clock starts; returns the layers.

    With every tag there from the start, a 404 for a puller is an error, never a race.
    """
    seed = Random(5678)
    shared = [seed.randbytes(seed.randint(100 << 10, 4 * MIB)) for _ in range(SHARED_LAYERS)]
    for layer in shared:
        upload_blob(session, url, layer)
    for tag in TAGS:
        config = json.dumps({"tag": tag, "run": secrets.token_hex(8)}).encode()
        upload_blob(session, url, config)
        manifest = image_manifest(config, shared)
        ledger.expect(tag, manifest)
        put = session.put(
            f"{url}/v2/{LOAD_REPOSITORY}/manifests/{tag}",
            data=manifest,
            headers={"Content-Type": DOCKER_MANIFEST},
            timeout=HTTP_TIMEOUT,
        )
        check(put, 201, f"seed {tag}")
    return shared


def load_report(ledger: Ledger, elapsed: float) -> str:
    pulls = sorted(ledger.pull_seconds)
    p50 = pulls[len(pulls) // 2] if pulls else 0.0
    return (
        f"\nthrough nginx to the Swarm service, {PUSHERS} pushers + {PULLERS} pullers for {elapsed:.1f}s: "
        f"pushed {ledger.pushed_images} images = {ledger.pushed_images / elapsed:.1f} images/s "
        f"({ledger.pushed_bytes / MIB / elapsed:.1f} MiB/s), "
        f"pulled {ledger.pulled_images} images = {ledger.pulled_images / elapsed:.1f} images/s "
        f"({ledger.pulled_bytes / MIB / elapsed:.1f} MiB/s), "
        f"pull p50 {1000 * p50:.0f} ms, p99 {1000 * (p99(pulls) if pulls else 0.0):.0f} ms, "
        f"errors {len(ledger.errors)}"
    )


def problems_in_nginx_log(proxy: Nginx) -> list[str]:
    """nginx's warnings and errors: upstream failures, or bodies buffered to disk despite the site."""
    levels = ("[warn]", "[error]", "[crit]", "[alert]", "[emerg]")
    return [line for line in proxy.error_log().splitlines() if any(level in line for level in levels)]


def service_log(docker: DockerCLI, deployment: Deployment) -> str:
    logs = docker("service", "logs", "--raw", deployment.stack.service(SERVICE), timeout=60)
    return logs.stdout + logs.stderr


# 5. Remove the stack, deploy it again ----------------------------------------------------


def test_images_survive_stack_rm_and_deploy(
    docker: DockerCLI, deployment: Deployment, proxy: Nginx, inventory: Inventory
) -> None:
    assert {repository for repository, _ in inventory.manifests} == {"deploy/big", LOAD_REPOSITORY}
    session = http_session()
    before = registry_contents(session, proxy.url)
    old_container = wait_until_healthy(docker, deployment.stack, SERVICE)

    remove_stack(docker, deployment.stack)
    gone = session.get(f"{proxy.url}/v2/", timeout=HTTP_TIMEOUT)
    assert gone.status_code == 502, "nginx still reaches a registry after `docker stack rm`"
    deploy_stack(docker, deployment.stack)
    assert wait_until_healthy(docker, deployment.stack, SERVICE) != old_container

    assert registry_contents(session, proxy.url) == before
    for (repository, digest), manifest in inventory.manifests.items():
        response = session.get(
            f"{proxy.url}/v2/{repository}/manifests/{digest}",
            headers={"Accept": ACCEPT_MANIFESTS},
            timeout=HTTP_TIMEOUT,
        )
        assert check(response, 200, f"GET {repository}@{digest}").content == manifest
        for descriptor in json.loads(manifest)["layers"]:
            blob = session.head(
                f"{proxy.url}/v2/{repository}/blobs/{descriptor['digest']}", timeout=HTTP_TIMEOUT
            )
            check(blob, 200, f"HEAD {repository} blob {descriptor['digest']}")
            assert int(blob.headers["Content-Length"]) == descriptor["size"]
    # and the bytes of every tagged image, the big one included, still match their digests
    for repository, tags in before.tags.items():
        for tag in tags:
            manifest = json.loads(before.manifests[f"{repository}:{tag}"][1])
            for descriptor in (manifest["config"], *manifest["layers"]):
                assert (
                    blob_digest(session, proxy.url, repository, descriptor["digest"]) == descriptor["digest"]
                )


@dataclass(frozen=True)
class RegistryContents:
    """What a user sees of a registry: the catalog, each repository's tags, each tag's manifest."""

    repositories: list[str]
    tags: dict[str, list[str]]
    manifests: dict[str, tuple[str, bytes]]  # "repository:tag" -> (digest header, body)


def registry_contents(session: requests.Session, url: str) -> RegistryContents:
    catalog = check(session.get(f"{url}/v2/_catalog", timeout=HTTP_TIMEOUT), 200, "GET catalog")
    assert "Link" not in catalog.headers  # one page holds it all: nothing is left unchecked
    contents = RegistryContents(catalog.json()["repositories"], {}, {})
    for repository in contents.repositories:
        listed = check(session.get(f"{url}/v2/{repository}/tags/list", timeout=HTTP_TIMEOUT), 200, "tags")
        contents.tags[repository] = listed.json()["tags"]
        for tag in contents.tags[repository]:
            response = session.get(
                f"{url}/v2/{repository}/manifests/{tag}",
                headers={"Accept": ACCEPT_MANIFESTS},
                timeout=HTTP_TIMEOUT,
            )
            check(response, 200, f"GET {repository}:{tag}")
            contents.manifests[f"{repository}:{tag}"] = (
                response.headers["Docker-Content-Digest"],
                response.content,
            )
    return contents


def blob_digest(session: requests.Session, url: str, repository: str, digest: str) -> str:
    """Stream a blob and hash what arrives: the digest of the bytes actually served."""
    hasher = hashlib.sha256()
    with session.get(f"{url}/v2/{repository}/blobs/{digest}", stream=True, timeout=HTTP_TIMEOUT) as response:
        check(response, 200, f"GET {repository} blob {digest}")
        for block in response.iter_content(MIB):
            hasher.update(block)
    return "sha256:" + hasher.hexdigest()


# 6. A new user, no restart ----------------------------------------------------------------


def test_user_added_to_htpasswd_can_log_in_without_a_restart(
    docker: DockerCLI, deployment: Deployment, proxy: Nginx, tmp_path: Path
) -> None:
    htpasswd = require_tool("htpasswd")
    container = wait_until_healthy(docker, deployment.stack, SERVICE)
    started_at = docker("inspect", "--format", "{{.State.StartedAt}}", container).stdout
    user, password = "bob", secrets.token_urlsafe(12)
    as_bob = http_session((user, password))
    assert as_bob.get(f"{proxy.url}/v2/", timeout=HTTP_TIMEOUT).status_code == 401

    # what an operator runs: Apache's htpasswd, bcrypt, password on stdin
    subprocess.run(
        [htpasswd, "-B", "-i", str(deployment.htpasswd), user],
        input=password,
        text=True,
        check=True,
        capture_output=True,
        timeout=30,
    )
    status = wait_for_status(as_bob, f"{proxy.url}/v2/", 200, RELOAD_SECONDS)
    assert status == 200, f"{user} still refused {RELOAD_SECONDS}s after being added"

    fresh = DockerCLI(docker.socket_path, tmp_path / "bob-docker-config")
    assert "Login Succeeded" in fresh.login(proxy.host, user, password).stdout
    assert http_session().get(f"{proxy.url}/v2/", timeout=HTTP_TIMEOUT).status_code == 200  # alice too
    # the same container, never restarted
    assert wait_until_healthy(docker, deployment.stack, SERVICE) == container
    assert docker("inspect", "--format", "{{.State.StartedAt}}", container).stdout == started_at


def wait_for_status(session: requests.Session, url: str, wanted: int, seconds: int) -> int:
    """GET `url` until it answers `wanted` or `seconds` pass; returns the last status."""
    deadline = time.monotonic() + seconds
    status = 0
    for _ in range(seconds * 4):
        status = session.get(url, timeout=HTTP_TIMEOUT).status_code
        if status == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    return status


# 7. The one-command path ---------------------------------------------------------------


def test_install_sh_migrates_registry2_data_retries_a_failed_nginx_reload_then_changes_nothing(
    docker: DockerCLI, cargobay_image: str, swarm: None, tmp_path: Path
) -> None:
    """deploy/install.sh --nginx as an operator runs it on a host that ran registry:2.

    The data home holds what registry:2 (as root, like its image) stored; nginx runs, and
    another site it serves was edited into one `nginx -t` refuses. The first run sets
    everything up but cannot reload nginx; once the other site is fixed, the next run
    reloads nginx although the site's files are already in place; the run after that
    changes nothing. A default server on the site's port (as Debian's default site has) does
    not take the registry's requests: the site names the host the clients use. Through nginx,
    the image registry:2 stored is pulled and runs, and a new tag of it is pushed where
    registry:2 wrote. Then a password change, an uninstall.
    """
    home = Path(tempfile.mkdtemp(prefix="cargobay-install-home-", dir="/tmp"))
    registry, htpasswd = home / "registry", home / "auth" / HTPASSWD_FILE
    port, stack = free_port(), "cargobay-install-e2e"
    nginx_dir, site_port, other_port = tmp_path / "nginx", free_port(), free_port()
    site = f"127.0.0.1:{site_port}"
    command = [
        str(REPO / "deploy" / "install.sh"),
        "--home",
        str(home),
        "--image",
        cargobay_image,
        "--port",
        str(port),
        "--stack",
        stack,
        "--nginx",
        "--nginx-dir",
        str(nginx_dir),
        "--nginx-listen",
        site,
        "--server-name",
        "127.0.0.1",  # the name the clients below use
    ]

    def install(*args: str, password: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args],
            input=f"{password}\n",
            env=docker.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def checked(url: str) -> str:
        return f"checked: {url} answers 401 without credentials and 200 to ci"

    direct, via_nginx = f"http://127.0.0.1:{port}/v2/", f"http://{site}/v2/"
    (nginx_dir / "sites-enabled").mkdir(parents=True)
    (nginx_dir / "sites-enabled" / "status").write_text(OTHER_SITE.format(port=other_port))
    try:
        migrated = store_with_registry2(docker, registry, tmp_path / "registry2")
        assert {path.stat().st_uid for path in registry.rglob("*")} == {0}  # as registry:2 leaves it
        with serving_nginx(nginx_dir, other_port) as nginx:
            # the other site now names a certificate that is not there: `nginx -t` fails
            (nginx_dir / "sites-enabled" / "status").write_text(BROKEN_SITE.format(port=other_port))
            first = install("--user", "ci", "--password-stdin", password="first-secret")
            assert first.returncode != 0, first.stdout
            assert "nginx -t failed" in first.stderr, first.stderr
            assert "changed: user ci added" in first.stdout
            assert f"changed: data in {registry} given to uid {IMAGE_UID}" in first.stdout
            assert {path.stat().st_uid for path in registry.rglob("*")} == {IMAGE_UID}
            assert (registry.stat().st_uid, oct(registry.stat().st_mode & 0o777)) == (IMAGE_UID, "0o750")
            assert (htpasswd.stat().st_uid, htpasswd.stat().st_gid) == (0, IMAGE_UID)
            assert oct(htpasswd.stat().st_mode & 0o777) == "0o640"
            assert checked(direct) in first.stdout  # the registry itself is up
            assert "changed: nginx site enabled" in first.stdout
            assert not accepts_connections(site_port)  # but nginx was not reloaded

            (nginx_dir / "sites-enabled" / "status").write_text(OTHER_SITE.format(port=other_port))
            # and, as on a stock Debian nginx, a default server on the registry site's port
            (nginx_dir / "sites-enabled" / "default").write_text(DEFAULT_SITE.format(port=site_port))
            retried = install("--user", "ci", "--password-stdin", password="first-secret")
            assert retried.returncode == 0, retried.stdout + retried.stderr
            # the site's files were right already; nginx did not serve them, so it is reloaded
            assert "install.sh: changed: nginx site" not in retried.stdout
            assert f"{via_nginx} answered 000 without credentials" in retried.stdout
            assert "changed: nginx reloaded" in retried.stdout
            assert "nothing changed" not in retried.stdout
            assert checked(via_nginx) in retried.stdout
            # the login line names the site's port: the build servers log in through nginx
            assert re.search(rf"^  docker login \S+:{site_port} -u ci$", retried.stdout, re.MULTILINE)

            second = install("--user", "ci", "--password-stdin", password="first-secret")
            assert second.returncode == 0, second.stdout + second.stderr
            assert "install.sh: changed:" not in second.stdout
            assert "ok: nginx serves the site" in second.stdout
            assert checked(direct) in second.stdout
            assert checked(via_nginx) in second.stdout
            assert "nothing changed" in second.stdout
            for credentials, status in ((None, 401), (("ci", "first-secret"), 200)):
                assert http_session(credentials).get(via_nginx, timeout=HTTP_TIMEOUT).status_code == status

            # registry:2's image, through nginx to the stack: pulled, run, and tagged anew
            assert "Login Succeeded" in docker.login(site, "ci", "first-secret").stdout
            image = f"{site}/{migrated.name}"
            pulled = docker("pull", image).stdout
            assert f"Digest: {migrated.digest}" in pulled, pulled
            assert docker("run", "--rm", "--network=none", image, "cat", "/etc/base-image").stdout == (
                migrated.marker
            )
            retagged = image.rsplit(":", 1)[0] + ":after-migration"
            docker("tag", image, retagged)
            digest, layers = push(docker, retagged)
            assert digest == migrated.digest
            assert set(layers.values()) == {"Layer already exists"}, layers
            assert nginx.process.poll() is None

            rotated = install("--user", "ci", "--password-stdin", password="second-secret")
            assert rotated.returncode == 0, rotated.stdout + rotated.stderr
            assert "changed: password of ci" in rotated.stdout
            assert "install.sh: changed: stack" not in rotated.stdout  # a new password needs no restart
            assert "install.sh: changed: nginx" not in rotated.stdout
            for url in (direct, via_nginx):
                assert http_session(("ci", "second-secret")).get(url, timeout=HTTP_TIMEOUT).status_code == 200
                assert http_session(("ci", "first-secret")).get(url, timeout=HTTP_TIMEOUT).status_code == 401

        removed = install("--uninstall")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert f"stack {stack} removed" in removed.stdout
        assert stack not in docker("stack", "ls", "--format", "{{.Name}}").stdout.split()
        assert htpasswd.exists()
        assert (registry / "docker/registry/v2/repositories" / migrated.name.split(":")[0]).is_dir()
    finally:
        install("--uninstall")
        shutil.rmtree(home, ignore_errors=True)


# A site the host already serves, and the same site after an edit `nginx -t` refuses.
OTHER_SITE = """\
server {{
    listen 127.0.0.1:{port};
    location / {{
        return 204;
    }}
}}
"""
# Debian's sites-enabled/default: whatever no other site names goes here.
DEFAULT_SITE = """\
server {{
    listen 127.0.0.1:{port} default_server;
    server_name _;
    location / {{
        return 404;
    }}
}}
"""
BROKEN_SITE = """\
server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate /nonexistent/other-site.crt;
    ssl_certificate_key /nonexistent/other-site.key;
    location / {{
        return 204;
    }}
}}
"""


@dataclass(frozen=True)
class StoredImage:
    name: str  # repository:tag
    digest: str
    marker: str  # the content of /etc/base-image in the image


def store_with_registry2(docker: DockerCLI, root: Path, workdir: Path) -> StoredImage:
    """registry:2 (Debian's docker-registry, run as root as its image runs) stores a pushed image.

    `root` is created here, as an operator's registry:2 data directory; registry:2 is stopped
    before this returns, and the image is removed from the engine, so a later pull is real.
    """
    root.mkdir(mode=0o755)
    workdir.mkdir()
    htpasswd = workdir / "htpasswd"
    write_htpasswd(htpasswd, {USER: PASSWORD})
    registry2 = start_registry2(workdir, root, htpasswd)
    try:
        base = f"localhost/cargobay-e2e/busybox:registry2-{secrets.token_hex(4)}"
        import_busybox_image(docker, base)
        name = "registry2/busybox:v1"
        image = f"{registry2.host}/{name}"
        docker("tag", base, image)
        docker.login(registry2.host, USER, PASSWORD)
        digest, _ = push(docker, image)
        docker("rmi", image, base)
    finally:
        registry2.stop()
    return StoredImage(name, digest, f"{base}\n")


def accepts_connections(port: int) -> bool:
    with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        return True
    return False
