"""`/v2/<name>/manifests/<reference>`: push, pull with Accept negotiation, delete."""

import json
import os

import pytest

from tests.support.client import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    PushedImage,
    descriptor,
    errors_of,
    image_manifest,
    push_blob,
    push_image,
    push_referrer,
    sha256,
)
from tests.support.datadir import blob_data_path, store_manifest_as_registry2_did
from tests.support.server import RegistryServer

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def test_push_by_tag_then_pull_by_tag_and_digest(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    image = push_image(session, registry.url, repo, "v1")
    for reference in ("v1", image.digest):
        got = session.get(
            f"{registry.url}/v2/{repo}/manifests/{reference}", headers={"Accept": DOCKER_MANIFEST}
        )
        assert got.status_code == 200
        assert got.content == image.manifest  # the exact bytes pushed
        assert got.headers["Content-Type"] == DOCKER_MANIFEST
        assert got.headers["Docker-Content-Digest"] == image.digest
        head = session.head(f"{registry.url}/v2/{repo}/manifests/{reference}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(image.manifest))
        assert head.headers["Docker-Content-Digest"] == image.digest
        assert head.content == b""


def test_put_answers_201_with_digest_and_location(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    config, layer = b'{"os":"linux"}', os.urandom(100)
    push_blob(session, registry.url, repo, config)
    push_blob(session, registry.url, repo, layer)
    manifest = image_manifest(config, [layer], oci=True)
    response = session.put(
        f"{registry.url}/v2/{repo}/manifests/{sha256(manifest)}",
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == sha256(manifest)
    assert response.headers["Location"] == f"{registry.url}/v2/{repo}/manifests/{sha256(manifest)}"


def test_put_by_digest_must_match_the_content(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    image = push_image(session, registry.url, repo)
    altered = image.manifest + b" "
    response = session.put(
        f"{registry.url}/v2/{repo}/manifests/{image.digest}",
        data=altered,
        headers={"Content-Type": DOCKER_MANIFEST},
    )
    assert response.status_code == 400
    assert errors_of(response) == ["DIGEST_INVALID"]
    assert session.get(f"{registry.url}/v2/{repo}/manifests/{image.digest}").content == image.manifest


def test_manifest_referencing_missing_blobs_is_refused(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    config = b'{"os":"linux"}'
    push_blob(session, registry.url, repo, config)
    manifest = image_manifest(config, [b"layer never pushed"])
    response = session.put(
        f"{registry.url}/v2/{repo}/manifests/latest",
        data=manifest,
        headers={"Content-Type": DOCKER_MANIFEST},
    )
    assert response.status_code == 400
    assert errors_of(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert session.get(f"{registry.url}/v2/{repo}/manifests/latest").status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", DOCKER_MANIFEST),
        (b"[1, 2]", DOCKER_MANIFEST),
        (b'{"schemaVersion": 2, "mediaType": "application/x-unknown"}', DOCKER_MANIFEST),
        (b'{"schemaVersion": 3, "config": {}}', OCI_MANIFEST),
        (
            json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": "x"}).encode(),
            DOCKER_MANIFEST,
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "a/b", "digest": "sha256:zz", "size": 1},
                    "layers": [],
                }
            ).encode(),
            OCI_MANIFEST,
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "a/b", "digest": sha256(b"x"), "size": -1},
                }
            ).encode(),
            OCI_MANIFEST,
        ),
        (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX}).encode(), DOCKER_MANIFEST),
    ],
)
def test_malformed_manifests_are_400_manifest_invalid(
    registry: RegistryServer, repo: str, body: bytes, content_type: str
) -> None:
    session = registry.session()
    response = session.put(
        f"{registry.url}/v2/{repo}/manifests/bad", data=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert errors_of(response) == ["MANIFEST_INVALID"]


def test_schema1_is_refused_with_a_clear_message(registry: RegistryServer, repo: str) -> None:
    schema1 = json.dumps({"schemaVersion": 1, "name": repo, "tag": "old", "fsLayers": []}).encode()
    response = registry.session().put(
        f"{registry.url}/v2/{repo}/manifests/old",
        data=schema1,
        headers={"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
    )
    assert response.status_code == 400
    assert errors_of(response) == ["MANIFEST_INVALID"]
    assert "schema 1" in response.json()["errors"][0]["message"]


def test_too_large_manifest_is_413(registry: RegistryServer, repo: str) -> None:
    response = registry.session().put(
        f"{registry.url}/v2/{repo}/manifests/huge",
        data=b" " * (4 * 1024 * 1024 + 1),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 413
    assert errors_of(response) == ["SIZE_INVALID"]


def test_invalid_tag_is_400(registry: RegistryServer, repo: str) -> None:
    image = push_image(registry.session(), registry.url, repo)
    response = registry.session().put(
        f"{registry.url}/v2/{repo}/manifests/-bad-tag",
        data=image.manifest,
        headers={"Content-Type": DOCKER_MANIFEST},
    )
    assert response.status_code == 400
    assert errors_of(response) == ["TAG_INVALID"]


def test_unknown_manifest_is_404(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    for reference in ("nope", sha256(b"nope")):
        response = session.get(f"{registry.url}/v2/{repo}/manifests/{reference}")
        assert response.status_code == 404
        assert errors_of(response) == ["MANIFEST_UNKNOWN"]


def test_accept_negotiation(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    push_image(session, registry.url, repo, "oci", oci=True)
    url = f"{registry.url}/v2/{repo}/manifests/oci"
    assert session.get(url).headers["Content-Type"] == OCI_MANIFEST  # no Accept: served as stored
    both = f"{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.9"
    assert session.get(url, headers={"Accept": both}).status_code == 200
    refused = session.get(url, headers={"Accept": DOCKER_MANIFEST})
    assert refused.status_code == 404
    assert errors_of(refused) == ["MANIFEST_UNKNOWN"]
    # a digest names exact bytes: they are served whatever the Accept header lists
    by_digest = session.get(
        f"{registry.url}/v2/{repo}/manifests/{refused.json()['errors'][0]['detail']['digest']}",
        headers={"Accept": DOCKER_MANIFEST},
    )
    assert by_digest.status_code == 200
    assert by_digest.headers["Content-Type"] == OCI_MANIFEST


def push_index(
    session, url: str, repo: str, tag: str, media_type: str = OCI_INDEX
) -> tuple[bytes, list[PushedImage]]:
    children = [push_image(session, url, repo, f"{tag}-child{i}", oci=True) for i in range(2)]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                descriptor(OCI_MANIFEST, child.manifest, platform={"architecture": arch, "os": "linux"})
                for child, arch in zip(children, ["amd64", "arm64"], strict=True)
            ],
        }
    ).encode()
    response = session.put(
        f"{url}/v2/{repo}/manifests/{tag}", data=index, headers={"Content-Type": media_type}
    )
    assert response.status_code == 201, response.text
    return index, children


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_index_and_manifest_list(registry: RegistryServer, repo: str, media_type: str) -> None:
    session = registry.session()
    index, children = push_index(session, registry.url, repo, "multi", media_type)
    got = session.get(f"{registry.url}/v2/{repo}/manifests/multi", headers={"Accept": media_type})
    assert got.content == index
    assert got.headers["Content-Type"] == media_type
    for child in children:
        assert session.head(f"{registry.url}/v2/{repo}/manifests/{child.digest}").status_code == 200


def test_index_listing_a_missing_manifest_is_refused(registry: RegistryServer, repo: str) -> None:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"missing"), "size": 7}],
        }
    ).encode()
    response = registry.session().put(
        f"{registry.url}/v2/{repo}/manifests/broken", data=index, headers={"Content-Type": OCI_INDEX}
    )
    assert response.status_code == 400
    assert errors_of(response) == ["MANIFEST_BLOB_UNKNOWN"]


def test_oci_artifact_with_empty_config_and_subject(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    image = push_image(session, registry.url, repo, oci=True)
    # push_referrer checks the answer: 201 with OCI-Subject naming the image
    artifact = push_referrer(session, registry.url, repo, image.manifest, payload=b"signature bytes")
    stored = session.get(f"{registry.url}/v2/{repo}/manifests/{sha256(artifact)}")
    assert stored.content == artifact
    assert stored.headers["Content-Type"] == OCI_MANIFEST


def test_delete_by_tag_removes_that_tag_only(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    image = push_image(session, registry.url, repo, "one")
    session.put(
        f"{registry.url}/v2/{repo}/manifests/two",
        data=image.manifest,
        headers={"Content-Type": DOCKER_MANIFEST},
    )
    assert session.delete(f"{registry.url}/v2/{repo}/manifests/one").status_code == 202
    assert session.get(f"{registry.url}/v2/{repo}/manifests/one").status_code == 404
    assert session.get(f"{registry.url}/v2/{repo}/manifests/two").content == image.manifest
    assert session.get(f"{registry.url}/v2/{repo}/manifests/{image.digest}").status_code == 200
    assert session.get(f"{registry.url}/v2/{repo}/tags/list").json()["tags"] == ["two"]


def test_delete_by_digest_removes_the_manifest_and_its_tags(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    image = push_image(session, registry.url, repo, "gone")
    keep = push_image(session, registry.url, repo, "kept")
    assert session.delete(f"{registry.url}/v2/{repo}/manifests/{image.digest}").status_code == 202
    assert session.get(f"{registry.url}/v2/{repo}/manifests/{image.digest}").status_code == 404
    assert session.get(f"{registry.url}/v2/{repo}/manifests/gone").status_code == 404
    assert session.get(f"{registry.url}/v2/{repo}/manifests/kept").content == keep.manifest
    again = session.delete(f"{registry.url}/v2/{repo}/manifests/{image.digest}")
    assert again.status_code == 404
    assert errors_of(again) == ["MANIFEST_UNKNOWN"]


def test_manifest_delete_is_refused_when_deletion_is_disabled(start_registry) -> None:
    server = start_registry(overrides={"storage.delete": None})
    session = server.session()
    image = push_image(session, server.url, "keep/it")
    for reference in ("latest", image.digest):
        response = session.delete(f"{server.url}/v2/keep/it/manifests/{reference}")
        assert response.status_code == 405
        assert errors_of(response) == ["UNSUPPORTED"]
    assert session.get(f"{server.url}/v2/keep/it/manifests/latest").status_code == 200


def test_retagging_moves_the_tag(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    push_image(session, registry.url, repo, "moving")
    second = push_image(session, registry.url, repo, "moving")
    got = session.get(f"{registry.url}/v2/{repo}/manifests/moving")
    assert got.headers["Docker-Content-Digest"] == second.digest


def test_a_schema1_manifest_left_by_registry2_is_still_served(registry: RegistryServer, repo: str) -> None:
    """registry:2 data directories can hold old schema 1 manifests; pulls of them must keep working."""
    schema1 = json.dumps({"schemaVersion": 1, "name": repo, "tag": "old", "fsLayers": []}).encode()
    store_manifest_as_registry2_did(registry.root, repo, "old", schema1)
    response = registry.session().get(f"{registry.url}/v2/{repo}/manifests/old")
    assert response.status_code == 200
    assert response.content == schema1
    assert response.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v1+prettyjws"


def test_a_manifest_corrupted_on_disk_is_not_served(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    image = push_image(session, registry.url, repo, "v1")
    blob_data_path(registry.root, image.digest).write_bytes(image.manifest.replace(b"2", b"3", 1))
    for reference in ("v1", image.digest):
        response = session.get(f"{registry.url}/v2/{repo}/manifests/{reference}")
        assert response.status_code == 404
        assert errors_of(response) == ["MANIFEST_UNKNOWN"]
    assert "does not match its digest" in registry.log()
