"""A small registry client for tests: push and pull blobs and manifests over plain HTTP."""

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import requests

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(session: requests.Session, url: str, name: str, data: bytes) -> str:
    """Monolithic upload (POST then PUT with the body); returns the digest."""
    digest = sha256(data)
    started = session.post(f"{url}/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    done = session.put(location, params={"digest": digest}, data=data)
    assert done.status_code == 201, done.text
    return digest


@dataclass(frozen=True)
class PushedImage:
    name: str
    reference: str
    digest: str
    manifest: bytes
    config: bytes
    layers: list[bytes]


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def image_manifest(config: bytes, layers: list[bytes], *, oci: bool = False, **extra: Any) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": descriptor(OCI_CONFIG if oci else DOCKER_CONFIG, config),
        "layers": [descriptor(OCI_LAYER if oci else DOCKER_LAYER, layer) for layer in layers],
        **extra,
    }
    return json.dumps(manifest, indent=3).encode()


def push_image(
    session: requests.Session,
    url: str,
    name: str,
    reference: str = "latest",
    *,
    layers: list[bytes] | None = None,
    oci: bool = False,
) -> PushedImage:
    """Push a config, layers and a manifest; returns what was pushed."""
    layers = layers if layers is not None else [os.urandom(1000), os.urandom(2000)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    for blob in [config, *layers]:
        push_blob(session, url, name, blob)
    manifest = image_manifest(config, layers, oci=oci)
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    response = session.put(
        f"{url}/v2/{name}/manifests/{reference}", data=manifest, headers={"Content-Type": media_type}
    )
    assert response.status_code == 201, response.text
    return PushedImage(name, reference, sha256(manifest), manifest, config, layers)


def push_referrer(
    session: requests.Session,
    url: str,
    repo: str,
    subject: bytes,
    artifact_type: str = "application/vnd.example.signature",
    *,
    payload: bytes = b"{}",
    subject_type: str = OCI_MANIFEST,
    annotations: dict[str, str] | None = None,
) -> bytes:
    """An OCI 1.1 artifact whose `subject` is the manifest `subject`, as cosign or notation
    push one (empty config, `payload` as its one layer); returns the artifact's bytes."""
    empty = b"{}"
    for blob in {empty, payload}:
        push_blob(session, url, repo, blob)
    layer_type = OCI_EMPTY if payload == empty else "application/octet-stream"
    artifact = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor(OCI_EMPTY, empty),
            "layers": [descriptor(layer_type, payload)],
            "subject": descriptor(subject_type, subject),
            **({"annotations": annotations} if annotations else {}),
        }
    ).encode()
    response = session.put(
        f"{url}/v2/{repo}/manifests/{sha256(artifact)}", data=artifact, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == sha256(subject)
    return artifact


def errors_of(response: requests.Response) -> list[str]:
    """The OCI error codes of a response body."""
    return [error["code"] for error in response.json()["errors"]]
