"""The real Docker engine against a real cargobay server: login, build, push, pull, run.

These are the steps a user replacing registry:2 takes first with `docker`: log in (and be
refused with a wrong password), push a multi-layer image they built, remove it, pull it
back and run it, and push another tag without uploading the layers again. The engine is a
private `dockerd` (see docker_engine.py); the base image is made locally from busybox, so
nothing outside loopback is contacted.
"""

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.docker_engine import (
    DockerCLI,
    DockerEngine,
    import_busybox_image,
)
from tests.support.server import PASSWORD, USER, RegistryServer

pytestmark = pytest.mark.e2e

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
PUSHED_DIGEST = re.compile(r"^(\S+): digest: (sha256:[0-9a-f]{64}) size: \d+$", re.MULTILINE)
LAYER_STATUS = re.compile(r"^([0-9a-f]{12}): (.+)$", re.MULTILINE)
# one COPY and two RUN steps on top of the one-layer base: four layers in the pushed image
DOCKERFILE = """\
FROM {base}
COPY secret.txt /data/secret.txt
RUN sha256sum /data/secret.txt > /data/secret.sha256
RUN mkdir -p /data/more && echo third-layer > /data/more/third.txt
CMD ["cat", "/data/secret.txt"]
"""
LAYERS = 4


@pytest.fixture
def docker(docker_engine: DockerEngine, tmp_path: Path) -> Iterator[DockerCLI]:
    """The docker CLI with a fresh DOCKER_CONFIG; the engine holds no images after the test."""
    cli = docker_engine.cli(tmp_path / "docker-config")
    yield cli
    cli("image", "prune", "--all", "--force", check=False)


@pytest.fixture
def base_image(docker: DockerCLI) -> str:
    """A busybox shell image made here; named under `localhost/` so a stray pull stays on loopback."""
    tag = f"localhost/cargobay-e2e/busybox:{secrets.token_hex(4)}"
    import_busybox_image(docker, tag)
    return tag


def build(docker: DockerCLI, base: str, context: Path, tag: str) -> str:
    """`docker build` (classic builder) the four-layer test image; returns the random secret it holds."""
    context.mkdir()
    secret = secrets.token_hex(32)
    (context / "secret.txt").write_text(secret)
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    docker("build", "--network=none", "--tag", tag, str(context))
    return secret


def push(docker: DockerCLI, image: str) -> tuple[str, dict[str, str]]:
    """`docker push`; returns the manifest digest it reports and the last status of each layer."""
    output = docker("push", image).stdout
    reported = PUSHED_DIGEST.findall(output)
    assert len(reported) == 1, output
    assert reported[0][0] == image.rsplit(":", 1)[1], output
    return reported[0][1], dict(LAYER_STATUS.findall(output))


def saved_logins(docker: DockerCLI) -> set[str]:
    """The registries `docker login` stored credentials for, in this test's DOCKER_CONFIG."""
    config = docker.config_dir / "config.json"
    return set(json.loads(config.read_text()).get("auths", {})) if config.exists() else set()


def test_login_refuses_wrong_password_and_accepts_the_right_one(
    docker: DockerCLI, registry: RegistryServer, base_image: str
) -> None:
    image = f"{registry.host}/test/login:v1"
    docker("tag", base_image, image)
    anonymous = docker("push", image, check=False)
    assert anonymous.returncode != 0
    assert "no basic auth credentials" in anonymous.stderr

    wrong = docker.login(registry.host, USER, f"not-{PASSWORD}", check=False)
    assert wrong.returncode != 0
    assert "unauthorized" in wrong.stderr.lower(), wrong.stderr
    assert registry.host not in saved_logins(docker)

    right = docker.login(registry.host, USER, PASSWORD)
    assert "Login Succeeded" in right.stdout
    assert registry.host in saved_logins(docker)  # in the private DOCKER_CONFIG, not ~/.docker


def test_built_image_survives_push_rmi_pull_and_runs(
    docker: DockerCLI, registry: RegistryServer, repo: str, base_image: str, tmp_path: Path
) -> None:
    docker.login(registry.host, USER, PASSWORD)
    image = f"{registry.host}/{repo}:v1"
    secret = build(docker, base_image, tmp_path / "context", image)

    digest, layers = push(docker, image)
    assert list(layers.values()) == ["Pushed"] * LAYERS, layers
    manifest_url = f"{registry.url}/v2/{repo}/manifests/v1"
    stored = registry.session().get(manifest_url, headers={"Accept": DOCKER_MANIFEST})
    assert stored.status_code == 200, stored.text
    assert stored.headers["Docker-Content-Digest"] == digest
    assert len(stored.json()["layers"]) == LAYERS

    # remove the image and its base, so every layer has to come back from cargobay
    docker("rmi", image, base_image)
    assert docker("image", "inspect", image, check=False).returncode != 0
    pulled = docker("pull", image).stdout
    assert list(dict(LAYER_STATUS.findall(pulled)).values()) == ["Pull complete"] * LAYERS, pulled
    assert f"Digest: {digest}" in pulled

    repo_digests = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}", image).stdout)
    assert repo_digests == [f"{registry.host}/{repo}@{digest}"]
    assert docker("run", "--rm", "--network=none", image).stdout == secret
    # the RUN layers came back too: the checksum written at build time, the third layer's file
    script = "sha256sum -c /data/secret.sha256 && cat /data/more/third.txt"
    checked = docker("run", "--rm", "--network=none", image, "sh", "-c", script)
    assert checked.stdout == "/data/secret.txt: OK\nthird-layer\n"


def test_second_tag_and_repository_reuse_pushed_layers(
    docker: DockerCLI, registry: RegistryServer, repo: str, base_image: str, tmp_path: Path
) -> None:
    docker.login(registry.host, USER, PASSWORD)
    first = f"{registry.host}/{repo}:v1"
    build(docker, base_image, tmp_path / "context", first)
    digest, layers = push(docker, first)
    assert list(layers.values()) == ["Pushed"] * LAYERS, layers

    second = f"{registry.host}/{repo}:v2"
    docker("tag", first, second)
    second_digest, layers = push(docker, second)
    assert list(layers.values()) == ["Layer already exists"] * LAYERS, layers
    assert second_digest == digest

    # another repository on the same registry: the engine mounts the blobs instead of uploading
    other = f"{registry.host}/{repo}-copy:v1"
    docker("tag", first, other)
    other_digest, layers = push(docker, other)
    assert list(layers.values()) == [f"Mounted from {repo}"] * LAYERS, layers
    assert other_digest == digest

    session = registry.session()
    assert session.get(f"{registry.url}/v2/{repo}/tags/list").json()["tags"] == ["v1", "v2"]
    for name, tag in ((repo, "v2"), (f"{repo}-copy", "v1")):
        head = session.head(f"{registry.url}/v2/{name}/manifests/{tag}", headers={"Accept": DOCKER_MANIFEST})
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == digest
