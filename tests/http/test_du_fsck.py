"""`cargobay du` and `cargobay fsck` against the storage of a running server, as an operator runs them."""

import json
import os
import pty
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.support.client import (
    OCI_INDEX,
    OCI_MANIFEST,
    PushedImage,
    descriptor,
    push_blob,
    push_image,
    sha256,
)
from tests.support.server import RegistryServer

V2 = "docker/registry/v2"


def cargobay(server: RegistryServer, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cargobay", command, "--config", str(server.config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
    )


def fsck(server: RegistryServer, *args: str, status: int) -> subprocess.CompletedProcess[str]:
    result = cargobay(server, "fsck", *args)
    assert result.returncode == status, result.stdout + result.stderr
    return result


def findings(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The finding lines of a report, without the `repaired:` lines under them."""
    return [line for line in result.stdout.splitlines() if not line.startswith("  ")]


def blob_data(server: RegistryServer, digest: str) -> Path:
    hex_ = digest.removeprefix("sha256:")
    return server.root / V2 / "blobs/sha256" / hex_[:2] / hex_ / "data"


def layer_link(server: RegistryServer, repo: str, digest: str) -> Path:
    hex_ = digest.removeprefix("sha256:")
    return server.root / V2 / "repositories" / repo / "_layers/sha256" / hex_ / "link"


def corrupt(path: Path) -> bytes:
    """Flip one byte in place, as a failing disk would: same size, same name, other content."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def image_content(image: PushedImage) -> dict[str, int]:
    """Every blob an image references, with its size: the manifest, the config, the layers."""
    return {sha256(data): len(data) for data in (image.manifest, image.config, *image.layers)}


def repush(session: requests.Session, server: RegistryServer, image: PushedImage) -> None:
    """Push an image again as docker does: upload what the registry says it lacks, then the manifest."""
    for data in (image.config, *image.layers):
        if session.head(f"{server.url}/v2/{image.name}/blobs/{sha256(data)}").status_code == 404:
            push_blob(session, server.url, image.name, data)
    response = session.put(
        f"{server.url}/v2/{image.name}/manifests/{image.reference}",
        data=image.manifest,
        headers={"Content-Type": json.loads(image.manifest)["mediaType"]},
    )
    assert response.status_code == 201, response.text


@pytest.fixture
def server(start_registry) -> RegistryServer:
    started: RegistryServer = start_registry()
    return started


def test_du_counts_unique_and_shared_bytes_per_repository(server: RegistryServer) -> None:
    session = server.session()
    base = os.urandom(3000)  # a base layer both applications are built on
    web = push_image(session, server.url, "team/web", "v1", layers=[base, os.urandom(1000)])
    web2 = push_image(session, server.url, "team/web", "v2", layers=[base, os.urandom(1500)])
    api = push_image(session, server.url, "team/api", "v1", layers=[base, os.urandom(2000)])
    children = [push_image(session, server.url, "team/multi", f"c{i}", oci=True) for i in range(2)]
    for i in range(2):
        session.delete(f"{server.url}/v2/team/multi/manifests/c{i}")  # the children only in the index
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, c.manifest) for c in children],
        }
    ).encode()
    put = session.put(
        f"{server.url}/v2/team/multi/manifests/latest", data=index, headers={"Content-Type": OCI_INDEX}
    )
    assert put.status_code == 201, put.text
    orphan = os.urandom(700)
    push_blob(session, server.url, "team/web", orphan)  # uploaded, but no manifest references it

    referenced = {
        "team/web": image_content(web) | image_content(web2),
        "team/api": image_content(api),
        "team/multi": {sha256(index): len(index)} | image_content(children[0]) | image_content(children[1]),
    }
    holders = Counter(digest for content in referenced.values() for digest in content)
    stored = {digest: size for content in referenced.values() for digest, size in content.items()}
    stored[sha256(orphan)] = len(orphan)

    result = cargobay(server, "du", "--json")
    assert result.returncode == 0, result.stderr
    usage = json.loads(result.stdout)
    measured = {repo["name"]: repo for repo in usage["repositories"]}
    assert set(measured) == set(referenced)
    for name, content in referenced.items():
        unique = sum(size for digest, size in content.items() if holders[digest] == 1)
        shared = sum(size for digest, size in content.items() if holders[digest] > 1)
        assert measured[name]["uniqueBytes"] == unique, name
        assert measured[name]["sharedBytes"] == shared, name
        assert measured[name]["totalBytes"] == unique + shared, name
    assert measured["team/web"]["sharedBytes"] == len(base)
    assert measured["team/multi"]["manifests"] == 3  # the index and both children
    assert measured["team/multi"]["sharedBytes"] == 0
    assert usage["storedBytes"] == sum(stored.values())
    assert usage["storedBlobs"] == len(stored)
    assert usage["unreferencedBytes"] == len(orphan)
    assert usage["unreferencedBlobs"] == 1
    # Biggest first, as an operator looking for space wants them.
    totals = [repo["totalBytes"] for repo in usage["repositories"]]
    assert totals == sorted(totals, reverse=True)

    table = cargobay(server, "du")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "MANIFESTS", "BLOBS", "UNIQUE", "SHARED", "TOTAL"]
    assert [line.split()[0] for line in lines[1:4]] == [repo["name"] for repo in usage["repositories"]]
    assert any(line.startswith("unreferenced") and "700 B in 1 blob" in line for line in lines)


def test_fsck_is_clean_on_a_fresh_registry(server: RegistryServer) -> None:
    empty = fsck(server, status=0)
    assert empty.stdout == ""
    assert "clean" in empty.stderr
    session = server.session()
    push_image(session, server.url, "fresh/app", "v1")
    push_image(session, server.url, "fresh/app", "v2", oci=True)
    session.post(f"{server.url}/v2/fresh/app/blobs/uploads/")  # an upload in progress is no problem
    result = fsck(server, status=0)
    assert "checked 8 blobs" in result.stderr
    assert "clean" in result.stderr


def test_fsck_finds_and_repairs_a_corrupt_blob_and_a_dangling_link(server: RegistryServer) -> None:
    session = server.session()
    image = push_image(session, server.url, "fsck/app", "v1")
    original = os.urandom(4000)
    bad = push_blob(session, server.url, "fsck/app", original)
    lost = push_blob(session, server.url, "fsck/app", os.urandom(1000))
    corrupted = corrupt(blob_data(server, bad))
    blob_data(server, lost).unlink()
    blob_url = f"{server.url}/v2/fsck/app/blobs/{bad}"
    assert session.get(blob_url).content == corrupted  # what a client gets before the repair

    found = fsck(server, status=1)
    lost_link = f"{V2}/repositories/fsck/app/_layers/sha256/{lost.removeprefix('sha256:')}/link"
    assert findings(found) == [
        f"corrupt blob: {bad} (4000 bytes) hashes to {sha256(corrupted)}; used by fsck/app",
        f"dangling link: {lost_link} -> {lost}, which has no data",
    ]
    assert "corrupt blobs: 1, dangling links: 1, missing references: 0" in found.stderr
    assert blob_data(server, bad).read_bytes() == corrupted  # without --repair nothing changes

    repaired = fsck(server, "--repair", status=1)
    bad_link = f"{V2}/repositories/fsck/app/_layers/sha256/{bad.removeprefix('sha256:')}/link"
    assert sorted(findings(repaired)) == sorted(
        [*findings(found), f"dangling link: {bad_link} -> {bad}, which has no data"]  # quarantined now
    )
    quarantine = list((server.root / "cargobay/quarantine").iterdir())
    assert len(quarantine) == 1
    name = quarantine[0].name
    assert name.startswith(f"sha256-{bad.removeprefix('sha256:')}-20")  # what it was, then when
    assert quarantine[0].read_bytes() == corrupted  # kept for the operator, never deleted
    assert f"  repaired: moved to cargobay/quarantine/{name}" in repaired.stdout
    assert not blob_data(server, bad).exists()
    assert not layer_link(server, "fsck/app", lost).exists()
    assert not layer_link(server, "fsck/app", bad).exists()
    assert "quarantined corrupt blob" in repaired.stderr  # every action is logged
    assert f"{lost_link} -> {lost}, which has no data: removed the link" in repaired.stderr

    assert "clean" in fsck(server, status=0).stderr
    assert session.head(blob_url).status_code == 404  # no bad bytes served: the client pushes again
    assert session.get(blob_url).status_code == 404
    push_blob(session, server.url, "fsck/app", original)
    assert session.get(blob_url).content == original
    assert session.get(f"{server.url}/v2/fsck/app/manifests/v1").content == image.manifest
    assert "clean" in fsck(server, status=0).stderr


def test_a_corrupt_layer_is_quarantined_and_the_image_pushed_again(server: RegistryServer) -> None:
    session = server.session()
    image = push_image(session, server.url, "fsck/img", "v1")
    layer = sha256(image.layers[0])
    corrupt(blob_data(server, layer))

    found = fsck(server, status=1)
    assert findings(found) == [
        f"corrupt blob: {layer} (1000 bytes) hashes to {sha256(blob_data(server, layer).read_bytes())}; "
        f"used by fsck/img, fsck/img@{image.digest}"
    ]

    repaired = fsck(server, "--repair", status=1)
    assert f"missing reference: fsck/img@{image.digest} references blob {layer}, which has no data" in (
        repaired.stdout
    )
    assert "push them again" in repaired.stderr
    assert session.get(f"{server.url}/v2/fsck/img/blobs/{layer}").status_code == 404

    # The damage that is left is the image's: only pushing it again can mend it.
    left = fsck(server, status=1)
    assert findings(left) == [
        f"missing reference: fsck/img@{image.digest} references blob {layer}, which has no data"
    ]
    repush(session, server, image)
    assert "clean" in fsck(server, status=0).stderr
    assert session.get(f"{server.url}/v2/fsck/img/blobs/{layer}").content == image.layers[0]


def test_fsck_removes_a_tag_whose_manifest_is_gone(server: RegistryServer) -> None:
    session = server.session()
    image = push_image(session, server.url, "fsck/gone", "v1")
    push_image(session, server.url, "fsck/gone", "v2")
    blob_data(server, image.digest).unlink()

    found = fsck(server, status=1)
    hex_ = image.digest.removeprefix("sha256:")
    assert findings(found) == [
        f"dangling link: {V2}/repositories/fsck/gone/_manifests/revisions/sha256/{hex_}/link"
        f" -> {image.digest}, which has no data",
        f"dangling link: {V2}/repositories/fsck/gone/_manifests/tags/v1/current/link"
        f" -> {image.digest}, which has no data",
    ]
    repaired = fsck(server, "--repair", status=1)
    assert "  repaired: removed tag fsck/gone:v1" in repaired.stdout
    assert session.get(f"{server.url}/v2/fsck/gone/tags/list").json()["tags"] == ["v2"]
    assert "clean" in fsck(server, status=0).stderr


def test_fsck_finds_orphaned_uploads(server: RegistryServer) -> None:
    session = server.session()
    uploads = server.root / V2 / "repositories/fsck/up/_uploads"

    def start_upload() -> Path:
        response = session.post(f"{server.url}/v2/fsck/up/blobs/uploads/")
        assert response.status_code == 202
        return uploads / response.headers["Docker-Upload-UUID"]

    active, empty, old = start_upload(), start_upload(), start_upload()
    (empty / "data").unlink()
    an_hour_ago = time.time() - 3600
    os.utime(empty, (an_hour_ago, an_hour_ago))
    (old / "startedat").write_text("2000-01-01T00:00:00Z")

    found = fsck(server, status=1)
    prefix = f"orphaned upload: {V2}/repositories/fsck/up/_uploads"
    assert sorted(findings(found)) == sorted(
        [f"{prefix}/{empty.name} has no data", f"{prefix}/{old.name} is older than 168h (uploadpurging.age)"]
    )
    fsck(server, "--repair", status=1)
    assert sorted(p.name for p in uploads.iterdir()) == [active.name]
    assert "clean" in fsck(server, status=0).stderr


@pytest.mark.parametrize(
    ("command", "phases"),
    [("fsck", ["hash KiB [", "check ["]), ("gc", ["scan [", "mark ["]), ("du", ["measure ["])],
)
def test_long_runs_show_a_progress_bar_on_a_terminal(
    server: RegistryServer, command: str, phases: list[str]
) -> None:
    session = server.session()
    push_image(session, server.url, "tty/one", "v1", layers=[os.urandom(300_000)])
    push_image(session, server.url, "tty/two", "v1")
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "cargobay", command, "--config", str(server.config_path)],
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
        )
    finally:
        os.close(terminal)
    output = b""
    try:
        while chunk := os.read(controller, 65536):
            output += chunk
    except OSError:  # EIO: the terminal's other side is closed and drained
        pass
    finally:
        os.close(controller)
    assert process.returncode == 0
    text = output.decode()
    assert "100% ETA 0:00:00" in text
    for phase in phases:
        assert phase in text
