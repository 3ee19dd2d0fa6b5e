"""Writing into a data directory behind the server's back, as registry:2 or a broken disk would."""

from pathlib import Path

from tests.support.client import sha256


def blob_data_path(root: Path, digest: str) -> Path:
    hex_digest = digest.removeprefix("sha256:")
    return root / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


def store_manifest_as_registry2_did(root: Path, repo: str, tag: str, body: bytes) -> str:
    """Write a manifest and its tag straight into the data directory; returns its digest."""
    digest = sha256(body)
    data = blob_data_path(root, digest)
    data.parent.mkdir(parents=True)
    data.write_bytes(body)
    manifests = root / "docker/registry/v2/repositories" / repo / "_manifests"
    hex_digest = digest.removeprefix("sha256:")
    for link in (
        manifests / "revisions/sha256" / hex_digest / "link",
        manifests / "tags" / tag / "current/link",
        manifests / "tags" / tag / "index/sha256" / hex_digest / "link",
    ):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.write_text(digest)
    return digest
