"""The one place that knows where everything lives in storage.

The tree is registry:2's (CNCF Distribution), byte for byte, so the two can
serve the same data directory. Link files hold a digest such as
`sha256:9f86d0…` with no newline.

    cargobay/
    ├── collection.lock                             shared by writers, exclusive for the collector
    ├── collection.stamp                            its mtime: when the last collection started
    └── quarantine/<algorithm>-<hex>-<time>         corrupt blobs `fsck --repair` moved aside
    docker/registry/v2/
    ├── blobs/
    │   └── sha256/9f/9f86d0…/data                  the bytes of a blob or manifest
    └── repositories/
        └── <name>/                                 name may contain /
            ├── _layers/sha256/<hex>/link           blob is part of this repository
            ├── _manifests/
            │   ├── revisions/sha256/<hex>/link     manifest is part of this repository
            │   ├── revisions/sha256/<hex>/cargobay-pulled
            │   │                                   cargobay only: mtime = last pull
            │   └── tags/<tag>/
            │       ├── current/link                what the tag points at now
            │       └── index/sha256/<hex>/link     every manifest the tag pointed at
            ├── _uploads/<uuid>/
            │   ├── data                            bytes received so far
            │   └── startedat                       RFC 3339 time the upload began
            └── _referrers/sha256/<subject-hex>/sha256/<hex>/link
                                                    cargobay only: manifest <hex> has
                                                    subject <subject-hex> (registry:2
                                                    skips directories starting with _)
"""

from cargobay.registry.digests import Digest

ROOT = "docker/registry/v2"
# cargobay's own files live beside registry:2's tree, never inside it.
CARGOBAY = "cargobay"
COLLECTION_LOCK = f"{CARGOBAY}/collection.lock"
COLLECTION_STAMP = f"{CARGOBAY}/collection.stamp"
QUARANTINE = f"{CARGOBAY}/quarantine"
BLOBS = f"{ROOT}/blobs"
REPOSITORIES = f"{ROOT}/repositories"
LINK = "link"
MANIFESTS_DIR = "_manifests"


def blob_dir(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def blob_data(digest: Digest) -> str:
    return f"{blob_dir(digest)}/data"


def repository(name: str) -> str:
    return f"{REPOSITORIES}/{name}"


def repository_manifests(name: str) -> str:
    return f"{repository(name)}/{MANIFESTS_DIR}"


def layers(name: str) -> str:
    return f"{repository(name)}/_layers"


def layer_dir(name: str, digest: Digest) -> str:
    return f"{layers(name)}/{digest.algorithm}/{digest.hex}"


def layer_link(name: str, digest: Digest) -> str:
    return f"{layer_dir(name, digest)}/{LINK}"


def manifest_revision_link(name: str, digest: Digest) -> str:
    return f"{manifest_revision_dir(name, digest)}/{LINK}"


def manifest_revisions(name: str) -> str:
    return f"{repository_manifests(name)}/revisions"


def manifest_revision_dir(name: str, digest: Digest) -> str:
    return f"{manifest_revisions(name)}/{digest.algorithm}/{digest.hex}"


def manifest_pulled_marker(name: str, digest: Digest) -> str:
    """cargobay only: an empty file whose modification time is the manifest's last pull."""
    return f"{manifest_revision_dir(name, digest)}/cargobay-pulled"


def tags(name: str) -> str:
    return f"{repository_manifests(name)}/tags"


def tag_dir(name: str, tag: str) -> str:
    return f"{tags(name)}/{tag}"


def tag_current_link(name: str, tag: str) -> str:
    return f"{tag_dir(name, tag)}/current/{LINK}"


def tag_index_dir(name: str, tag: str, digest: Digest) -> str:
    return f"{tag_dir(name, tag)}/index/{digest.algorithm}/{digest.hex}"


def tag_index_link(name: str, tag: str, digest: Digest) -> str:
    return f"{tag_index_dir(name, tag, digest)}/{LINK}"


def uploads(name: str) -> str:
    return f"{repository(name)}/_uploads"


def upload_dir(name: str, upload_id: str) -> str:
    return f"{uploads(name)}/{upload_id}"


def upload_data(name: str, upload_id: str) -> str:
    return f"{upload_dir(name, upload_id)}/data"


def upload_started_at(name: str, upload_id: str) -> str:
    return f"{upload_dir(name, upload_id)}/startedat"


def referrers(name: str) -> str:
    return f"{repository(name)}/_referrers"


def referrers_dir(name: str, subject: Digest) -> str:
    return f"{referrers(name)}/{subject.algorithm}/{subject.hex}"


def referrer_dir(name: str, subject: Digest, referrer: Digest) -> str:
    return f"{referrers_dir(name, subject)}/{referrer.algorithm}/{referrer.hex}"


def referrer_link(name: str, subject: Digest, referrer: Digest) -> str:
    return f"{referrer_dir(name, subject, referrer)}/{LINK}"
