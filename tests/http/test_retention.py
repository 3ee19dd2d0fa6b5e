"""Retention rules and pusher-chosen expiry, evaluated with `--now` as the controllable clock."""

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from cargobay.config import load_settings
from cargobay.registry.retention import TagDeletion, apply_retention, plan_retention
from cargobay.storage.filesystem import FilesystemDriver
from tests.support.client import (
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    push_blob,
    push_image,
    sha256,
)
from tests.support.server import RegistryServer

RULES = [
    {"repositories": "ci/*", "keepnewest": 2, "keeptags": "^release-"},
    {"repositories": "nightly/*", "maxage": "1h", "keeppulledwithin": "24h"},
]
ATTESTATION = "vnd.docker.reference.type"


def retention(server: RegistryServer, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "cargobay", "retention", "--config", str(server.config_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def tags(server: RegistryServer, repo: str) -> list[str]:
    found: list[str] = server.session().get(f"{server.url}/v2/{repo}/tags/list").json()["tags"]
    return found


def retag(
    server: RegistryServer, repo: str, manifest: bytes, tag: str, media_type: str = DOCKER_MANIFEST
) -> None:
    response = server.session().put(
        f"{server.url}/v2/{repo}/manifests/{tag}", data=manifest, headers={"Content-Type": media_type}
    )
    assert response.status_code == 201


@pytest.fixture
def server(start_registry) -> RegistryServer:
    started: RegistryServer = start_registry(overrides={"cargobay.retention": {"rules": RULES}})
    return started


def test_keep_newest_and_keep_tags(server: RegistryServer) -> None:
    image = push_image(server.session(), server.url, "ci/proxy", "release-1")
    for tag in ("b1", "b2", "b3", "b4"):
        time.sleep(0.01)  # distinct push times
        retag(server, "ci/proxy", image.manifest, tag)
    plan = retention(server, "--dry-run")
    assert "would delete ci/proxy:b1" in plan
    assert "would delete ci/proxy:b2" in plan
    assert "release-1" not in plan
    assert "would delete 2 tags" in plan
    assert tags(server, "ci/proxy") == ["b1", "b2", "b3", "b4", "release-1"]  # the dry run changed nothing
    applied = retention(server, "--apply")
    assert "deleted ci/proxy:b1" in applied
    assert tags(server, "ci/proxy") == ["b3", "b4", "release-1"]
    assert server.session().get(f"{server.url}/v2/ci/proxy/manifests/{image.digest}").status_code == 200


def test_max_age_spares_what_was_pulled_recently(server: RegistryServer) -> None:
    session = server.session()
    pulled = push_image(session, server.url, "nightly/db", "pulled")
    push_image(session, server.url, "nightly/db", "checked")
    push_image(session, server.url, "nightly/db", "ignored")
    assert session.get(f"{server.url}/v2/nightly/db/manifests/pulled").status_code == 200
    # a client whose copy is up to date only asks HEAD: the image is still in use
    assert session.head(f"{server.url}/v2/nightly/db/manifests/checked").status_code == 200
    assert "would delete 0 tags" in retention(server, "--dry-run", "--now", "+30m")  # younger than 1h
    later = retention(server, "--dry-run", "--now", "+2h")
    assert "would delete nightly/db:ignored" in later
    assert "nightly/db:pulled" not in later  # pulled 2h before, within 24h
    assert "nightly/db:checked" not in later
    two_days = retention(server, "--dry-run", "--now", "+48h")
    assert f"would delete nightly/db:pulled ({pulled.digest})" in two_days  # the pull is too old now
    retention(server, "--apply", "--now", "+2h")
    assert tags(server, "nightly/db") == ["checked", "pulled"]


def test_expiry_from_a_manifest_annotation(server: RegistryServer) -> None:
    session = server.session()
    config, layer = b'{"os":"linux"}', os.urandom(64)
    push_blob(session, server.url, "scratch/pr-42", config)
    push_blob(session, server.url, "scratch/pr-42", layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
            "annotations": {"cargobay.expires-after": "48h"},
        }
    ).encode()
    retag(server, "scratch/pr-42", manifest, "build", OCI_MANIFEST)
    assert "would delete 0 tags" in retention(server, "--dry-run", "--now", "+47h")
    expired = retention(server, "--apply", "--now", "+49h")
    assert f"deleted scratch/pr-42:build ({sha256(manifest)}): expired" in expired
    assert tags(server, "scratch/pr-42") == []


def push_labelled(server: RegistryServer, repo: str, tag: str, expires_after: str) -> None:
    labels = {"cargobay.expires-after": expires_after}
    config = json.dumps({"os": "linux", "config": {"Labels": labels}}).encode()
    push_blob(server.session(), server.url, repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor("application/vnd.docker.container.image.v1+json", config),
            "layers": [],
        }
    ).encode()
    retag(server, repo, manifest, tag)


def test_expiry_from_an_image_label(server: RegistryServer) -> None:
    push_labelled(server, "scratch/labelled", "tmp", "2h")
    push_labelled(server, "scratch/labelled", "overridden", "")  # `LABEL cargobay.expires-after=`
    push_image(server.session(), server.url, "scratch/labelled", "forever")
    out = retention(server, "--dry-run", "--now", "+3h")
    assert "would delete scratch/labelled:tmp" in out
    assert "forever" not in out
    assert "overridden" not in out


def test_expiry_from_a_label_of_the_images_an_index_lists(server: RegistryServer) -> None:
    """`docker buildx build --push` sends an index (with a provenance attestation beside the image)."""
    session = server.session()
    config = json.dumps({"os": "linux", "config": {"Labels": {"cargobay.expires-after": "2h"}}}).encode()
    push_blob(session, server.url, "scratch/buildx", config)
    image = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [],
        }
    ).encode()
    retag(server, "scratch/buildx", image, sha256(image), OCI_MANIFEST)
    attestation = push_image(session, server.url, "scratch/buildx", "attestation", oci=True)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                descriptor(
                    OCI_MANIFEST, attestation.manifest, annotations={ATTESTATION: "attestation-manifest"}
                ),
                descriptor(OCI_MANIFEST, image, platform={"os": "linux", "architecture": "amd64"}),
            ],
        }
    ).encode()
    retag(server, "scratch/buildx", index, "pr-7", OCI_INDEX)
    assert "would delete 0 tags" in retention(server, "--dry-run", "--now", "+1h")
    assert f"would delete scratch/buildx:pr-7 ({sha256(index)}): expired" in retention(
        server, "--dry-run", "--now", "+3h"
    )


def test_scheduled_retention_in_the_server(start_registry) -> None:
    rules = [{"repositories": "tmp/*", "maxage": "1s"}]
    server = start_registry(overrides={"cargobay.retention": {"interval": "1s", "rules": rules}})
    push_image(server.session(), server.url, "tmp/job", "run-1")
    deadline = time.monotonic() + 20
    while tags(server, "tmp/job") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tags(server, "tmp/job") == []
    assert "retention deleted tag tmp/job:run-1" in server.log()


def test_a_pull_between_the_plan_and_the_deletion_keeps_the_tag(server: RegistryServer) -> None:
    session = server.session()
    push_image(session, server.url, "nightly/db", "in-use")
    driver = FilesystemDriver(server.root)
    rules = load_settings(server.config_path, {}).retention.rules

    async def plan_pull_apply() -> list[TagDeletion]:
        plan = await plan_retention(driver, rules, now=time.time() + 2 * 3600)
        assert [(d.repository, d.tag) for d in plan] == [("nightly/db", "in-use")]
        assert session.get(f"{server.url}/v2/nightly/db/manifests/in-use").status_code == 200
        return await apply_retention(driver, plan)

    assert asyncio.run(plan_pull_apply()) == []
    assert tags(server, "nightly/db") == ["in-use"]
