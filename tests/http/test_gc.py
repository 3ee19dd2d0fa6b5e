"""Online garbage collection against a running server: exactly the reachable set stays."""

import json
import os
import subprocess
import sys
import time

import pytest
import requests

from tests.support.client import (
    OCI_INDEX,
    OCI_MANIFEST,
    PushedImage,
    descriptor,
    push_blob,
    push_image,
    push_referrer,
    sha256,
)
from tests.support.datadir import store_manifest_as_registry2_did
from tests.support.server import PASSWORD, USER, RegistryServer, status_within_seconds, write_htpasswd


def gc(server: RegistryServer, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "cargobay", "gc", "--config", str(server.config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
    )
    assert result.returncode == 0, result.stderr
    return result


def stored_blobs(server: RegistryServer) -> set[str]:
    root = server.root / "docker/registry/v2/blobs/sha256"
    return {f"sha256:{data.parent.name}" for data in root.glob("*/*/data")}


def stored_manifests(server: RegistryServer) -> set[tuple[str, str]]:
    repositories = server.root / "docker/registry/v2/repositories"
    return {
        (str(link.parents[4].relative_to(repositories)), f"sha256:{link.parent.name}")
        for link in repositories.glob("**/_manifests/revisions/sha256/*/link")
    }


def catalog(server: RegistryServer) -> list[str]:
    repositories: list[str] = server.session().get(f"{server.url}/v2/_catalog").json()["repositories"]
    return repositories


def image_blobs(image: PushedImage) -> set[str]:
    return {image.digest, sha256(image.config), *(sha256(layer) for layer in image.layers)}


def put_manifest(
    session: requests.Session, server: RegistryServer, repo: str, ref: str, body: bytes, media_type: str
) -> str:
    response = session.put(
        f"{server.url}/v2/{repo}/manifests/{ref}", data=body, headers={"Content-Type": media_type}
    )
    assert response.status_code == 201, response.text
    return sha256(body)


def push_signature(
    session: requests.Session, server: RegistryServer, repo: str, subject: PushedImage
) -> tuple[str, set[str]]:
    """A signature of `subject`; returns its digest and every blob it brings."""
    signature = os.urandom(64)
    artifact = push_referrer(session, server.url, repo, subject.manifest, payload=signature)
    return sha256(artifact), {sha256(artifact), sha256(b"{}"), sha256(signature)}


class Scene:
    """A registry with every kind of content, and what the test expects each collection to keep."""

    def __init__(self, server: RegistryServer) -> None:
        session = server.session()
        self.tagged = push_image(session, server.url, "app/web", "v1", oci=True)
        self.untagged = push_image(session, server.url, "app/web", "temp", oci=True)
        session.delete(f"{server.url}/v2/app/web/manifests/temp")  # tag gone, manifest stays
        self.signature, self.signature_blobs = push_signature(session, server, "app/web", self.tagged)
        children = [push_image(session, server.url, "app/multi", f"c{i}", oci=True) for i in range(2)]
        for i in range(2):
            session.delete(f"{server.url}/v2/app/multi/manifests/c{i}")  # children only in the index
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [descriptor(OCI_MANIFEST, c.manifest) for c in children],
            }
        ).encode()
        self.index = put_manifest(session, server, "app/multi", "latest", index, OCI_INDEX)
        self.index_blobs = {self.index} | set().union(*(image_blobs(c) for c in children))
        self.children = {c.digest for c in children}
        self.deleted = push_image(session, server.url, "app/old", "v0", oci=True)
        self.orphan_signature, self.orphan_signature_blobs = push_signature(
            session, server, "app/old", self.deleted
        )
        assert session.delete(f"{server.url}/v2/app/old/manifests/{self.deleted.digest}").status_code == 202
        self.orphan_blob = push_blob(session, server.url, "app/web", os.urandom(500))

    def kept_by_default(self) -> set[str]:
        return (
            image_blobs(self.tagged)
            | image_blobs(self.untagged)
            | self.signature_blobs
            | self.index_blobs
            | self.orphan_signature_blobs
        )

    def kept_without_untagged(self) -> set[str]:
        return image_blobs(self.tagged) | self.signature_blobs | self.index_blobs


@pytest.fixture
def server(start_registry) -> RegistryServer:
    started: RegistryServer = start_registry(overrides={"cargobay.admins": [USER]})
    return started


def test_collection_keeps_exactly_what_tags_and_untagged_manifests_reach(server: RegistryServer) -> None:
    scene = Scene(server)
    gc(server, "--grace", "0")
    assert stored_blobs(server) == scene.kept_by_default()
    assert ("app/web", scene.untagged.digest) in stored_manifests(server)
    assert catalog(server) == ["app/multi", "app/old", "app/web"]  # app/old keeps its orphan signature


def test_delete_untagged_keeps_index_children_and_referrers_of_kept_images(server: RegistryServer) -> None:
    scene = Scene(server)
    result = gc(server, "--grace", "0", "--delete-untagged")
    assert stored_blobs(server) == scene.kept_without_untagged()
    assert stored_manifests(server) == {
        ("app/web", scene.tagged.digest),
        ("app/web", scene.signature),
        ("app/multi", scene.index),
        *(("app/multi", child) for child in scene.children),
    }
    assert catalog(server) == ["app/multi", "app/web"]  # app/old was left with nothing
    assert f"app/web@{scene.untagged.digest}" in result.stdout
    session = server.session()
    for child in scene.children:
        assert session.get(f"{server.url}/v2/app/multi/manifests/{child}").status_code == 200
    referrers = session.get(f"{server.url}/v2/app/web/referrers/{scene.tagged.digest}").json()
    assert [m["digest"] for m in referrers["manifests"]] == [scene.signature]


def test_dry_run_lists_and_changes_nothing(server: RegistryServer) -> None:
    scene = Scene(server)
    before_blobs, before_manifests = stored_blobs(server), stored_manifests(server)
    result = gc(server, "--grace", "0", "--delete-untagged", "--dry-run")
    assert stored_blobs(server) == before_blobs
    assert stored_manifests(server) == before_manifests
    assert f"would remove blob {scene.orphan_blob}" in result.stdout
    assert f"would remove manifest app/old@{scene.orphan_signature}" in result.stdout


def test_the_grace_period_protects_recent_content(server: RegistryServer) -> None:
    Scene(server)
    before = stored_blobs(server)
    gc(server, "--delete-untagged")  # default grace: one hour
    assert stored_blobs(server) == before


def test_repush_after_collection_uploads_the_layer_again(server: RegistryServer) -> None:
    session = server.session()
    image = push_image(session, server.url, "ci/build", "1")
    session.delete(f"{server.url}/v2/ci/build/manifests/{image.digest}")
    gc(server, "--grace", "0")
    layer_url = f"{server.url}/v2/ci/build/blobs/{sha256(image.layers[0])}"
    assert session.head(layer_url).status_code == 404  # nothing claims the deleted layer exists
    again = push_image(session, server.url, "ci/build", "2", layers=image.layers)
    assert session.get(layer_url).content == image.layers[0]
    assert session.get(f"{server.url}/v2/ci/build/manifests/2").content == again.manifest


def test_garbage_collect_with_registry2s_arguments(server: RegistryServer) -> None:
    scene = Scene(server)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cargobay",
            "garbage-collect",
            "--dry-run",
            "--delete-untagged",
            str(server.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"would remove manifest app/web@{scene.untagged.digest}" not in result.stdout  # 1h grace
    assert "would remove 0 manifests" in result.stderr


def test_garbage_collect_takes_the_grace_of_the_config_and_keeps_index_children(start_registry) -> None:
    server = start_registry(overrides={"cargobay.gc": {"grace": "0"}})
    scene = Scene(server)
    result = subprocess.run(
        [sys.executable, "-m", "cargobay", "garbage-collect", "-m", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert stored_blobs(server) == scene.kept_without_untagged()
    assert {("app/multi", child) for child in scene.children} <= stored_manifests(server)


def test_admin_endpoint_needs_credentials_and_collects(server: RegistryServer) -> None:
    scene = Scene(server)
    assert requests.post(f"{server.url}/admin/gc").status_code == 401
    response = server.session().post(
        f"{server.url}/admin/gc", params={"grace": "0", "deleteuntagged": "true"}
    )
    assert response.status_code == 200
    report = response.json()
    assert f"app/web@{scene.untagged.digest}" in report["manifests"]
    assert {"digest": scene.orphan_blob, "size": 500} in report["blobs"]
    assert stored_blobs(server) == scene.kept_without_untagged()
    bad = server.session().post(f"{server.url}/admin/gc", params={"grace": "soon"})
    assert bad.status_code == 400


def test_admin_endpoint_takes_the_configured_grace_and_mode(start_registry) -> None:
    server = start_registry(
        overrides={"cargobay.admins": [USER], "cargobay.gc": {"grace": "0s", "deleteuntagged": True}}
    )
    scene = Scene(server)
    assert server.session().post(f"{server.url}/admin/gc").status_code == 200
    assert stored_blobs(server) == scene.kept_without_untagged()


def test_admin_endpoint_is_only_for_admins(server: RegistryServer) -> None:
    write_htpasswd(server.config_path.parent / "htpasswd", {USER: PASSWORD, "bob": "builder-7"})
    assert status_within_seconds(server, ("bob", "builder-7"), 200)  # the file was reloaded
    orphan = push_blob(server.session(), server.url, "app/web", os.urandom(500))
    response = server.session(("bob", "builder-7")).post(f"{server.url}/admin/gc", params={"grace": "0"})
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "DENIED"
    assert orphan in stored_blobs(server)


def test_admin_endpoint_is_refused_without_auth(start_registry) -> None:
    open_server = start_registry(auth=False)
    response = requests.post(f"{open_server.url}/admin/gc")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "DENIED"


def test_delete_can_cascade_to_referrers(server: RegistryServer) -> None:
    session = server.session()
    image = push_image(session, server.url, "signed/app", "v1", oci=True)
    signature, _ = push_signature(session, server, "signed/app", image)
    url = f"{server.url}/v2/signed/app/manifests/{image.digest}"
    assert session.delete(url, params={"cascade": "referrers"}).status_code == 202
    assert session.get(f"{server.url}/v2/signed/app/manifests/{signature}").status_code == 404


def test_scheduled_collection_in_the_server(start_registry) -> None:
    server = start_registry(
        overrides={"cargobay.gc": {"interval": "1s", "grace": "0", "deleteuntagged": True}}
    )
    session = server.session()
    image = push_image(session, server.url, "sched/app", "v1")
    session.delete(f"{server.url}/v2/sched/app/manifests/{image.digest}")
    deadline = time.monotonic() + 20
    while sha256(image.layers[0]) in stored_blobs(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not image_blobs(image) & stored_blobs(server)
    assert "scheduled garbage collection removed" in server.log()


def test_collection_keeps_what_manifests_cargobay_no_longer_accepts_reference(
    server: RegistryServer,
) -> None:
    session = server.session()
    schema1_layers = [push_blob(session, server.url, "old/schema1", os.urandom(300)) for _ in range(2)]
    schema1 = json.dumps(
        {
            "schemaVersion": 1,
            "name": "old/schema1",
            "tag": "v1",
            "fsLayers": [{"blobSum": d} for d in schema1_layers],
        }
    ).encode()
    artifact_blob = os.urandom(400)
    push_blob(session, server.url, "old/artifact", artifact_blob)
    artifact = json.dumps(
        {
            "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
            "artifactType": "application/vnd.example.sbom",
            "blobs": [descriptor("application/json", artifact_blob)],
        }
    ).encode()
    kept = {
        store_manifest_as_registry2_did(server.root, "old/schema1", "v1", schema1),
        store_manifest_as_registry2_did(server.root, "old/artifact", "v1", artifact),
        *schema1_layers,
        sha256(artifact_blob),
    }
    orphan = push_blob(session, server.url, "old/artifact", os.urandom(100))
    gc(server, "--grace", "0", "--delete-untagged")
    assert stored_blobs(server) == kept  # only the orphan went
    assert orphan not in stored_blobs(server)
    assert session.get(f"{server.url}/v2/old/schema1/blobs/{schema1_layers[0]}").status_code == 200


def test_an_untagged_index_within_the_grace_period_keeps_its_childrens_layers(
    server: RegistryServer,
) -> None:
    """An index pushed by digest, to be tagged a moment later, must find its children whole."""
    session = server.session()
    child = push_image(session, server.url, "ci/multi", "child", oci=True)
    session.delete(f"{server.url}/v2/ci/multi/manifests/child")  # untagged now
    an_hour_and_more_ago = time.time() - 2 * 3600
    for data in (server.root / "docker/registry/v2").glob("**/*"):
        if data.is_file():
            os.utime(data, (an_hour_and_more_ago, an_hour_and_more_ago))
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, child.manifest)]}
    ).encode()
    index_digest = put_manifest(session, server, "ci/multi", sha256(index), index, OCI_INDEX)
    gc(server, "--grace", "1h", "--delete-untagged")
    assert stored_blobs(server) == image_blobs(child) | {index_digest}
    tagged = session.put(
        f"{server.url}/v2/ci/multi/manifests/v1", data=index, headers={"Content-Type": OCI_INDEX}
    )
    assert tagged.status_code == 201
    for layer in child.layers:
        assert session.get(f"{server.url}/v2/ci/multi/blobs/{sha256(layer)}").content == layer


def test_deleting_an_index_keeps_the_children_another_index_lists(server: RegistryServer) -> None:
    session = server.session()
    shared = push_image(session, server.url, "app/multi", "shared", oci=True)
    only_old = push_image(session, server.url, "app/multi", "only-old", oci=True)
    for tag in ("shared", "only-old"):
        session.delete(f"{server.url}/v2/app/multi/manifests/{tag}")

    def index_of(*children: PushedImage) -> bytes:
        manifests = [descriptor(OCI_MANIFEST, c.manifest) for c in children]
        return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()

    old = put_manifest(session, server, "app/multi", "old", index_of(shared, only_old), OCI_INDEX)
    put_manifest(session, server, "app/multi", "new", index_of(shared), OCI_INDEX)
    assert session.delete(f"{server.url}/v2/app/multi/manifests/{old}").status_code == 202
    gc(server, "--grace", "0", "--delete-untagged")
    assert image_blobs(shared) <= stored_blobs(server)
    assert not image_blobs(only_old) & stored_blobs(server)
    child = session.get(
        f"{server.url}/v2/app/multi/manifests/{shared.digest}", headers={"Accept": OCI_MANIFEST}
    )
    assert child.status_code == 200
    for layer in shared.layers:
        assert session.get(f"{server.url}/v2/app/multi/blobs/{sha256(layer)}").content == layer
