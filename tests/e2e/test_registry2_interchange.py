"""cargobay and the real registry:2 serve each other's data directory and htpasswd file.

cargobay is a drop-in for registry:2, so a user must be able to switch either way on an
existing root directory and keep their htpasswd file. Each direction pushes with skopeo to
one server, stops it, starts the other on the same root, and pulls: digests, tags lists and
catalog must be the same, and a manifest deleted on one side must be gone on the other.

The htpasswd file holds one entry written by cargobay (`hash_password`, `$2y$` bcrypt) and one
written by `htpasswd -B -b`; each direction writes as one user and reads as the other, so both
servers are shown to accept both kinds of entry. A last test pushes the same images to each
server separately and compares the two storage trees file by file.
"""

import hashlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.client import OCI_MANIFEST, push_referrer, sha256
from tests.support.oci_layout import (
    Image,
    ImageIndex,
    make_image,
    make_index,
    read_blob,
    tagged_descriptor,
    write_layout,
)
from tests.support.registry2 import Registry2, start_registry2
from tests.support.server import PASSWORD, USER, RegistryServer, start_server, write_htpasswd
from tests.support.skopeo import Skopeo, assert_dir_copy_is
from tests.support.tools import require_tool

pytestmark = pytest.mark.e2e

ALICE = (USER, PASSWORD)  # entry written by cargobay.auth.htpasswd.hash_password
BOB = ("bob", "builder-7")  # entry written by `htpasswd -B -b`
HTTP_SECONDS = 10

Server = RegistryServer | Registry2
StartCargobay = Callable[[Path], RegistryServer]
StartRegistry2 = Callable[[Path], Registry2]


@dataclass(frozen=True)
class Pushed:
    """What a test pushed: a single image tagged v1 and v2, an index, and a deleted image."""

    image: Image
    index: ImageIndex
    deleted: Image
    layout: Path


@pytest.fixture
def htpasswd_file(tmp_path: Path) -> Path:
    """One file with a cargobay-written entry (ALICE) and an `htpasswd -B -b` entry (BOB)."""
    htpasswd = require_tool("htpasswd")
    path = tmp_path / "auth" / "htpasswd"
    path.parent.mkdir()
    write_htpasswd(path, {ALICE[0]: ALICE[1]})
    subprocess.run([htpasswd, "-B", "-b", str(path), *BOB], check=True, capture_output=True, timeout=30)
    entries = dict(line.split(":", 1) for line in path.read_text().splitlines())
    assert entries[ALICE[0]].startswith("$2y$"), entries
    assert entries[BOB[0]].startswith("$2y$"), entries
    return path


@pytest.fixture
def cargobay_on(htpasswd_file: Path) -> Iterator[StartCargobay]:
    """Start cargobay on a given root with the shared htpasswd file; stopped at the end if still running."""
    started: list[RegistryServer] = []

    def start(root: Path) -> RegistryServer:
        # start_server uses WORKDIR/htpasswd when it exists: the shared file's directory.
        server = start_server(htpasswd_file.parent, root=root)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def registry2_on(htpasswd_file: Path, tmp_path: Path) -> Iterator[StartRegistry2]:
    """Start registry:2 on a given root with the shared htpasswd file; stopped at the end."""
    require_tool("docker-registry")  # fail (CI) or skip before the test starts anything
    started: list[Registry2] = []

    def start(root: Path) -> Registry2:
        server = start_registry2(tmp_path / "registry2", root, htpasswd_file)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def push_images(skopeo: Skopeo, host: str, writer: tuple[str, str], workdir: Path) -> Pushed:
    """Push an image under two tags, a multi-arch index, and an image then deleted by digest."""
    pushed = Pushed(
        make_image("interchange"), make_index("interchange"), make_image("deleted"), workdir / "src"
    )
    write_layout(pushed.layout, {"image": pushed.image, "index": pushed.index, "deleted": pushed.deleted})
    source = f"oci:{pushed.layout}"
    skopeo.copy(f"{source}:image", f"docker://{host}/app/single:v1", writer)
    skopeo.copy(f"{source}:image", f"docker://{host}/app/single:v2", writer)
    skopeo.copy(f"{source}:index", f"docker://{host}/app/multi:latest", writer, "--all")
    skopeo.copy(f"{source}:deleted", f"docker://{host}/app/gone:v1", writer)
    gone = f"docker://{host}/app/gone@{pushed.deleted.digest}"
    skopeo.run("delete", "--tls-verify=false", f"--creds={writer[0]}:{writer[1]}", gone)
    return pushed


def assert_pulls_back(skopeo: Skopeo, host: str, reader: tuple[str, str], pushed: Pushed, out: Path) -> None:
    """Every pushed manifest and blob comes back with its digest; the deleted image does not."""
    out.mkdir(parents=True, exist_ok=True)  # skopeo creates the last path element only
    for tag in ("v1", "v2"):
        skopeo.copy(f"docker://{host}/app/single:{tag}", f"dir:{out / tag}", reader)
        assert_dir_copy_is(out / tag, pushed.image)

    skopeo.copy(f"docker://{host}/app/multi:latest", f"oci:{out / 'multi'}:latest", reader, "--all")
    assert tagged_descriptor(out / "multi", "latest")["digest"] == pushed.index.digest
    for blob in pushed.index.blobs():
        assert read_blob(out / "multi", blob.digest) == blob.data

    gone = skopeo.copy(
        f"docker://{host}/app/gone@{pushed.deleted.digest}", f"dir:{out / 'gone'}", reader, check=False
    )
    assert gone.returncode != 0, "the deleted manifest could still be pulled"
    assert b"manifest unknown" in gone.stderr, gone.stderr.decode(errors="replace")


def api_view(server: Server, creds: tuple[str, str]) -> dict[str, Any]:
    """What the API says about the root: catalog, each repository's tags, each tag's digest."""
    with requests.Session() as session:
        session.auth = creds
        catalog = session.get(f"{server.url}/v2/_catalog", timeout=HTTP_SECONDS)
        assert catalog.status_code == 200, catalog.text
        view: dict[str, Any] = {"catalog": catalog.json()}
        for name in catalog.json()["repositories"]:
            response = session.get(f"{server.url}/v2/{name}/tags/list", timeout=HTTP_SECONDS)
            assert response.status_code == 200, f"{name}: {response.text}"
            tags = response.json()
            # A repository whose last tag went with a deleted manifest: registry:2 says
            # "tags": null, cargobay "tags": [] (what the OCI spec's list type implies).
            tags["tags"] = tags["tags"] or []
            view[f"{name} tags"] = tags
            for tag in tags["tags"]:
                head = session.head(
                    f"{server.url}/v2/{name}/manifests/{tag}",
                    headers={
                        "Accept": "application/vnd.oci.image.manifest.v1+json, "
                        "application/vnd.oci.image.index.v1+json"
                    },
                    timeout=HTTP_SECONDS,
                )
                view[f"{name}:{tag}"] = (head.status_code, head.headers.get("Docker-Content-Digest"))
        return view


def expected_view(pushed: Pushed) -> dict[str, Any]:
    return {
        "catalog": {"repositories": ["app/gone", "app/multi", "app/single"]},
        "app/gone tags": {"name": "app/gone", "tags": []},
        "app/single tags": {"name": "app/single", "tags": ["v1", "v2"]},
        "app/multi:latest": (200, pushed.index.digest),
        "app/single:v1": (200, pushed.image.digest),
        "app/single:v2": (200, pushed.image.digest),
    }


def storage_tree(root: Path) -> dict[str, str]:
    """Every file of registry:2's tree (`docker/`): link files by content, other files by SHA-256.

    cargobay keeps its own files (the collection lock) beside it in `cargobay/`, outside.
    """
    tree = {}
    for path in sorted((root / "docker").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            tree[str(path.relative_to(root))] = (
                data.decode() if path.name == "link" else hashlib.sha256(data).hexdigest()
            )
    return tree


def test_both_servers_accept_both_kinds_of_htpasswd_entry(
    cargobay_on: StartCargobay, registry2_on: StartRegistry2, tmp_path: Path
) -> None:
    """registry:2 accepts cargobay's `$2y$` entries and cargobay accepts `htpasswd -B` ones."""
    servers: list[Server] = [cargobay_on(tmp_path / "root-a"), registry2_on(tmp_path / "root-b")]
    for server in servers:
        for user, password in (ALICE, BOB):
            ok = requests.get(f"{server.url}/v2/", auth=(user, password), timeout=HTTP_SECONDS)
            assert ok.status_code == 200, f"{server.url} {user}: {ok.status_code}"
            wrong = requests.get(f"{server.url}/v2/", auth=(user, password + "x"), timeout=HTTP_SECONDS)
            assert wrong.status_code == 401, f"{server.url} {user} wrong password: {wrong.status_code}"


def test_registry2_serves_what_cargobay_stored(
    skopeo: Skopeo, cargobay_on: StartCargobay, registry2_on: StartRegistry2, tmp_path: Path
) -> None:
    """Direction A: push to cargobay (as the `htpasswd -B` user), then serve the root with registry:2."""
    root = tmp_path / "root"
    cargobay = cargobay_on(root)
    pushed = push_images(skopeo, cargobay.host, BOB, tmp_path)
    with requests.Session() as session:
        session.auth = BOB
        manifest = pushed.image.manifest
        signature = push_referrer(
            session, cargobay.url, "app/single", manifest.data, subject_type=manifest.media_type
        )
    before = api_view(cargobay, BOB)
    cargobay.stop()
    # what only cargobay writes is in the tree: pull times (api_view's HEADs) and referrers
    repository = root / "docker/registry/v2/repositories/app/single"
    assert list(repository.glob("_manifests/revisions/sha256/*/cargobay-pulled"))
    assert list(repository.glob("_referrers/sha256/*/sha256/*/link"))

    registry2 = registry2_on(root)
    assert_pulls_back(skopeo, registry2.host, ALICE, pushed, tmp_path / "pulled")
    after = api_view(registry2, ALICE)
    assert after == before
    assert expected_view(pushed).items() <= after.items()
    served = requests.get(
        f"{registry2.url}/v2/app/single/manifests/{sha256(signature)}",
        auth=ALICE,
        headers={"Accept": OCI_MANIFEST},
        timeout=HTTP_SECONDS,
    )
    assert served.status_code == 200
    assert served.content == signature


def test_cargobay_serves_what_registry2_stored(
    skopeo: Skopeo, cargobay_on: StartCargobay, registry2_on: StartRegistry2, tmp_path: Path
) -> None:
    """Direction B: push to registry:2 (as the cargobay-written user), then serve the root with cargobay."""
    root = tmp_path / "root"
    registry2 = registry2_on(root)
    pushed = push_images(skopeo, registry2.host, ALICE, tmp_path)
    before = api_view(registry2, ALICE)
    registry2.stop()

    cargobay = cargobay_on(root)
    assert_pulls_back(skopeo, cargobay.host, BOB, pushed, tmp_path / "pulled")
    after = api_view(cargobay, BOB)
    assert after == before
    assert expected_view(pushed).items() <= after.items()


def test_same_pushes_write_identical_storage_trees(
    skopeo: Skopeo, cargobay_on: StartCargobay, registry2_on: StartRegistry2, tmp_path: Path
) -> None:
    """The layout is registry:2's byte for byte: the same pushes leave the same files with the same bytes."""
    cargobay = cargobay_on(tmp_path / "root-cargobay")
    registry2 = registry2_on(tmp_path / "root-registry2")
    pushed = push_images(skopeo, cargobay.host, ALICE, tmp_path / "to-cargobay")
    push_images(skopeo, registry2.host, ALICE, tmp_path / "to-registry2")

    ours, theirs = storage_tree(cargobay.root), storage_tree(registry2.root)
    v1 = "docker/registry/v2/repositories/app/single/_manifests/tags/v1/current/link"
    assert ours.get(v1) == theirs.get(v1) == pushed.image.digest, "the trees are not where layout.py says"
    assert sorted(set(ours) - set(theirs)) == [], "files only cargobay wrote"
    assert sorted(set(theirs) - set(ours)) == [], "files only registry:2 wrote"
    assert {path for path in ours if ours[path] != theirs[path]} == set(), "files with different bytes"
