"""Manifests: parsed and checked before they are stored, served as the exact bytes pushed.

Supported: Docker image manifest v2 schema 2 and manifest list, OCI image
manifest and index, OCI artifacts (`artifactType`, the empty config) and the
`subject` field of OCI 1.1. Schema 1 is refused: registry:2 stopped accepting
it by default, and no current client needs it.
"""

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cargobay.registry import links, mediatypes
from cargobay.registry.blobs import BlobStore
from cargobay.registry.descriptors import Descriptor
from cargobay.registry.digests import Digest
from cargobay.registry.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
)
from cargobay.registry.tags import TagStore
from cargobay.storage import layout
from cargobay.storage.driver import PathNotFound, StorageDriver

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 4 << 20  # the OCI spec's suggested limit
CACHED_MANIFEST_BYTES = 16 << 20  # parsed manifests kept in memory, by digest


@dataclass(frozen=True)
class Manifest:
    """A manifest as stored: its exact bytes and what cargobay needs to know about them."""

    payload: bytes
    digest: Digest
    media_type: str
    blobs: tuple[Descriptor, ...]  # config and layers, which must be in the repository
    children: tuple[Descriptor, ...]  # manifests an index lists
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str]

    def as_referrer(self) -> Descriptor:
        """The descriptor of this manifest in a referrers index (OCI 1.1)."""
        artifact_type = self.artifact_type
        if artifact_type is None and self.blobs and self.media_type in mediatypes.IMAGE_MANIFESTS:
            artifact_type = self.blobs[0].media_type  # the config's media type, as the spec says
        return Descriptor(self.media_type, self.digest, len(self.payload), artifact_type, self.annotations)


def parse_manifest(payload: bytes, content_type: str | None, digest: Digest) -> Manifest:
    """Parse and check a pushed manifest, or raise `ManifestInvalid` saying what is wrong."""
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestInvalid(f"manifest is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    media_type = _media_type(document, content_type)
    blobs: list[Descriptor] = []
    children: list[Descriptor] = []
    if media_type in mediatypes.IMAGE_MANIFESTS:
        blobs.append(Descriptor.parse(document.get("config"), "config"))
        blobs.extend(_descriptor_list(document, "layers", allow_empty=True))
    else:
        children.extend(_descriptor_list(document, "manifests", allow_empty=True))
    subject = document.get("subject")
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    annotations = document.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ManifestInvalid("annotations must be an object")
    return Manifest(
        payload=payload,
        digest=digest,
        media_type=media_type,
        blobs=tuple(b for b in blobs if not b.urls),  # foreign layers live elsewhere
        children=tuple(children),
        subject=None if subject is None else Descriptor.parse(subject, "subject"),
        artifact_type=artifact_type,
        annotations=annotations,
    )


def stored_manifest(payload: bytes, digest: Digest) -> Manifest:
    """A manifest read back from storage: served as it is, even a kind cargobay would not accept now.

    A data directory registry:2 wrote may hold schema 1 manifests, the withdrawn OCI
    artifact manifest or other oddities; refusing to serve them would break pulls that
    worked before, and forgetting what they reference would let a collection delete
    their layers. So their references are salvaged as far as they can be read.
    """
    try:
        return parse_manifest(payload, None, digest)
    except ManifestInvalid:
        pass
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if not isinstance(document, dict):
        return Manifest(payload, digest, "application/json", (), (), None, None, {})
    declared = document.get("mediaType")
    if isinstance(declared, str):
        media_type = declared
    elif document.get("schemaVersion") == 1:
        media_type = mediatypes.DOCKER_SCHEMA1_SIGNED
    else:
        media_type = "application/json"
    blobs = [document.get("config"), *_list(document, "layers"), *_list(document, "blobs")]
    blobs += [
        {"digest": layer.get("blobSum")} for layer in _list(document, "fsLayers") if isinstance(layer, dict)
    ]
    subject = _salvaged(document.get("subject"))
    return Manifest(
        payload=payload,
        digest=digest,
        media_type=media_type,
        blobs=tuple(d for d in map(_salvaged, blobs) if d is not None),
        children=tuple(d for d in map(_salvaged, _list(document, "manifests")) if d is not None),
        subject=subject,
        artifact_type=None,
        annotations={},
    )


def _list(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    return value if isinstance(value, list) else []


def _salvaged(value: Any) -> Descriptor | None:
    """What can be read of a descriptor that may not be valid: its digest above all."""
    if not isinstance(value, dict) or not isinstance(value.get("digest"), str):
        return None
    try:
        digest = Digest.parse(value["digest"])
    except DigestInvalid:
        return None
    media_type, size = value.get("mediaType"), value.get("size")
    return Descriptor(
        media_type if isinstance(media_type, str) and media_type else "application/octet-stream",
        digest,
        size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0,
    )


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    schema_version = document.get("schemaVersion")
    header = (content_type or "").split(";")[0].strip()
    if schema_version == 1 or declared in mediatypes.SCHEMA1 or header in mediatypes.SCHEMA1:
        raise ManifestInvalid(
            "Docker image manifest schema 1 is not supported: push schema 2 or OCI manifests"
        )
    if schema_version != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    if declared is not None:
        if declared not in mediatypes.MANIFESTS:
            raise ManifestInvalid(f"unsupported manifest mediaType {str(declared)[:100]!r}")
        if header in mediatypes.MANIFESTS and header != declared:
            raise ManifestInvalid(
                f"Content-Type {header!r} does not match the manifest's mediaType {declared!r}"
            )
        return str(declared)
    if header in mediatypes.MANIFESTS:
        return header
    # OCI allows mediaType to be absent; its shape then tells the kind.
    if "manifests" in document:
        return mediatypes.OCI_INDEX
    if "config" in document:
        return mediatypes.OCI_MANIFEST
    raise ManifestInvalid("cannot tell the manifest's media type: set mediaType or Content-Type")


def _descriptor_list(document: dict[str, Any], key: str, *, allow_empty: bool) -> list[Descriptor]:
    value = document.get(key, [] if allow_empty else None)
    if not isinstance(value, list):
        raise ManifestInvalid(f"{key} must be a list of descriptors")
    return [Descriptor.parse(item, f"{key}[{i}]") for i, item in enumerate(value)]


class ManifestStore:
    def __init__(self, driver: StorageDriver, blobs: BlobStore, tags: TagStore) -> None:
        self._driver = driver
        self._blobs = blobs
        self._tags = tags
        # Content addressed, so a cached manifest can never be stale; whether a repository
        # still has it is read from storage on every request.
        self._parsed: OrderedDict[Digest, Manifest] = OrderedDict()
        self._parsed_bytes = 0

    async def put(self, name: str, manifest: Manifest, tag: str | None) -> None:
        """Store a parsed manifest in `name`, after checking everything it references is there.

        Call it under the shared collection lock (`Registry.put_manifest` does).
        """
        await self._check_references(name, manifest)
        await self._driver.write_bytes(layout.blob_data(manifest.digest), manifest.payload)
        await links.write_link(
            self._driver, layout.manifest_revision_link(name, manifest.digest), manifest.digest
        )
        if manifest.subject is not None:
            await links.write_link(
                self._driver,
                layout.referrer_link(name, manifest.subject.digest, manifest.digest),
                manifest.digest,
            )
        if tag is not None:
            await self._tags.tag(name, tag, manifest.digest)

    async def get(self, name: str, digest: Digest) -> Manifest:
        """The manifest `digest` of `name`, or `ManifestUnknown`."""
        if await links.read_link(self._driver, layout.manifest_revision_link(name, digest)) != digest:
            raise ManifestUnknown(detail={"digest": str(digest)})
        cached = self._parsed.get(digest)
        if cached is not None:
            self._parsed.move_to_end(digest)
            return cached
        try:
            payload = await self._driver.read_bytes(layout.blob_data(digest))
        except PathNotFound:
            raise ManifestUnknown(detail={"digest": str(digest)}) from None
        if Digest.of(payload, digest.algorithm) != digest:
            # Corrupted on disk: serving it would hand out bytes that fail the client's check.
            log.error("manifest %s in %s does not match its digest: run `cargobay fsck`", digest, name)
            raise ManifestUnknown(detail={"digest": str(digest)})
        manifest = stored_manifest(payload, digest)
        self._remember(manifest)
        return manifest

    def _remember(self, manifest: Manifest) -> None:
        self._parsed[manifest.digest] = manifest
        self._parsed_bytes += len(manifest.payload)
        while self._parsed_bytes > CACHED_MANIFEST_BYTES:
            _, evicted = self._parsed.popitem(last=False)
            self._parsed_bytes -= len(evicted.payload)

    async def delete(self, name: str, digest: Digest, *, cascade: bool = False) -> None:
        """Remove a manifest from `name` with every tag that points at it, as registry:2 does;
        with `cascade`, its referrers (signatures, SBOMs) and theirs go too."""
        manifest = await self.get(name, digest)
        if cascade:
            for referrer in await self.referrers(name, digest):
                await self.delete(name, referrer.digest, cascade=True)
        for tag in await self._tags.tags_pointing_at(name, digest):
            await self._driver.delete(layout.tag_dir(name, tag))
        if manifest.subject is not None:
            await self._driver.delete(layout.referrer_dir(name, manifest.subject.digest, digest))
        await self._driver.delete(layout.manifest_revision_dir(name, digest))

    async def referrers(self, name: str, subject: Digest) -> list[Manifest]:
        found = []
        directory = layout.referrers_dir(name, subject)
        for digest in await links.list_linked_digests(self._driver, directory):
            try:
                found.append(await self.get(name, digest))
            except ManifestUnknown:
                continue  # deleted while we listed
        return found

    async def _check_references(self, name: str, manifest: Manifest) -> None:
        """Every referenced blob and child manifest must be in `name`; each is marked fresh."""
        for blob in manifest.blobs:
            try:
                await self._blobs.claim(name, blob.digest)
            except BlobUnknown:
                raise ManifestBlobUnknown(
                    f"blob {blob.digest} is not in repository {name}: push it first",
                    detail={"digest": str(blob.digest)},
                ) from None
        for child in manifest.children:
            revision = layout.manifest_revision_link(name, child.digest)
            try:
                await self._driver.touch(revision)
                await self._driver.touch(layout.blob_data(child.digest))
            except PathNotFound:
                pass  # reported just below
            if await links.read_link(self._driver, revision) != child.digest:
                raise ManifestBlobUnknown(
                    f"manifest {child.digest} listed by the index is not in repository {name}",
                    detail={"digest": str(child.digest)},
                )


def check_digest(payload: bytes, expected: Digest) -> Digest:
    """The payload's digest with `expected`'s algorithm; `DigestInvalid` if they differ."""
    actual = Digest.of(payload, expected.algorithm)
    if actual != expected:
        raise DigestInvalid(f"manifest has digest {actual}, not {expected}", detail={"digest": str(expected)})
    return actual
