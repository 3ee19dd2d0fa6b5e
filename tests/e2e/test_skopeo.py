"""The real skopeo against a real cargobay server: push, pull, inspect, delete, authenticate.

These are the checks a user moving from registry:2 would make with their own tools: the
image that comes back has the digests that went in (manifest, config, every layer), the
layers hold the same files, a multi-arch index survives `--all` both ways, deletion by
digest removes the image, and wrong credentials are refused.
"""

import json
from pathlib import Path

import pytest

from tests.support.oci_layout import (
    layout_digests,
    make_image,
    make_index,
    read_blob,
    tagged_descriptor,
    write_layout,
)
from tests.support.server import PASSWORD, USER, RegistryServer
from tests.support.skopeo import Skopeo, assert_dir_copy_is

pytestmark = pytest.mark.e2e

CREDS = (USER, PASSWORD)


def test_push_from_oci_layout_and_pull_to_dir(
    skopeo: Skopeo, registry: RegistryServer, repo: str, tmp_path: Path
) -> None:
    """The common path: push a built image, pull it back, and get the same bytes."""
    image = make_image(f"single-{repo}")
    write_layout(tmp_path / "src", {"v1": image})
    ref = f"docker://{registry.host}/{repo}:v1"

    skopeo.copy(f"oci:{tmp_path / 'src'}:v1", ref, CREDS)
    skopeo.copy(ref, f"dir:{tmp_path / 'out'}", CREDS)

    assert_dir_copy_is(tmp_path / "out", image)
    inspected = skopeo.inspect(ref, CREDS)
    assert inspected["Digest"] == image.digest
    assert inspected["RepoTags"] == ["v1"]
    assert inspected["Layers"] == [layer.digest for layer in image.layers]
    assert skopeo.inspect_raw(ref, CREDS) == image.manifest.data


def test_multi_arch_index_round_trip_with_all(
    skopeo: Skopeo, registry: RegistryServer, repo: str, tmp_path: Path
) -> None:
    """`copy --all` pushes an index and every child; pulling `--all` gives them back unchanged."""
    index = make_index(f"multi-{repo}")
    write_layout(tmp_path / "src", {"multi": index})
    ref = f"docker://{registry.host}/{repo}:multi"

    skopeo.copy(f"oci:{tmp_path / 'src'}:multi", ref, CREDS, "--all")
    skopeo.copy(ref, f"oci:{tmp_path / 'out'}:pulled", CREDS, "--all")

    out = tmp_path / "out"
    assert tagged_descriptor(out, "pulled")["digest"] == index.digest
    assert read_blob(out, index.digest) == index.index.data
    children = json.loads(read_blob(out, index.digest))["manifests"]
    assert [child["digest"] for child in children] == [image.digest for image in index.images.values()]
    assert set(layout_digests(out)) == {blob.digest for blob in index.blobs()}
    for image in index.images.values():
        assert read_blob(out, image.digest) == image.manifest.data
    assert skopeo.inspect_raw(ref, CREDS) == index.index.data

    # A single-platform pull picks the arm64 child, as `docker pull --platform` would.
    arm64 = index.images["linux/arm64"]
    skopeo.copy(ref, f"dir:{tmp_path / 'arm64'}", CREDS, "--override-arch=arm64", "--override-os=linux")
    assert_dir_copy_is(tmp_path / "arm64", arm64)


def test_delete_manifest_by_digest(
    skopeo: Skopeo, registry: RegistryServer, repo: str, tmp_path: Path
) -> None:
    """`skopeo delete` by digest (delete is enabled in the test config) removes the image and its tag."""
    image = make_image(f"delete-{repo}")
    write_layout(tmp_path / "src", {"v1": image})
    skopeo.copy(f"oci:{tmp_path / 'src'}:v1", f"docker://{registry.host}/{repo}:v1", CREDS)
    by_digest = f"docker://{registry.host}/{repo}@{image.digest}"

    skopeo.run("delete", "--tls-verify=false", f"--creds={USER}:{PASSWORD}", by_digest)

    for ref in (by_digest, f"docker://{registry.host}/{repo}:v1"):
        pulled = skopeo.copy(ref, f"dir:{tmp_path / 'out'}", CREDS, check=False)
        assert pulled.returncode != 0, f"{ref} could still be pulled after delete"
        assert b"manifest unknown" in pulled.stderr, pulled.stderr.decode(errors="replace")


@pytest.mark.parametrize("direction", ["pull", "push"])
def test_wrong_credentials_are_refused(
    skopeo: Skopeo, registry: RegistryServer, repo: str, tmp_path: Path, direction: str
) -> None:
    """A wrong password fails with an authentication error, both reading and writing."""
    image = make_image(f"auth-{repo}")
    write_layout(tmp_path / "src", {"v1": image})
    source, ref = f"oci:{tmp_path / 'src'}:v1", f"docker://{registry.host}/{repo}:v1"
    skopeo.copy(source, ref, CREDS)
    wrong = (USER, PASSWORD + "-wrong")

    if direction == "pull":
        result = skopeo.copy(ref, f"dir:{tmp_path / 'out'}", wrong, check=False)
    else:
        result = skopeo.copy(source, f"docker://{registry.host}/{repo}:v2", wrong, check=False)

    stderr = result.stderr.decode(errors="replace")
    assert result.returncode != 0, stderr
    assert "unauthorized" in stderr, stderr
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert skopeo.inspect(ref, CREDS)["RepoTags"] == ["v1"], "a refused push must not add a tag"
