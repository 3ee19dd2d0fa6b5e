"""The registry as the HTTP layer sees it: one object with the operations of the API.

Names, tags and digests arrive validated (`names`, `digests`); this module
decides what each operation means, including the rules registry:2 users
rely on (deletion off by default, deleting a tag removes that tag only).
"""

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from cargobay.registry import mediatypes
from cargobay.registry.blobs import Blob, BlobStore
from cargobay.registry.catalog import list_repositories
from cargobay.registry.descriptors import Descriptor
from cargobay.registry.digests import Digest, is_digest
from cargobay.registry.errors import DeleteDisabled
from cargobay.registry.manifests import Manifest, ManifestStore, check_digest, parse_manifest
from cargobay.registry.names import validate_tag
from cargobay.registry.pagination import Page, paginate
from cargobay.registry.pulls import PullLog
from cargobay.registry.tags import TagStore
from cargobay.registry.uploads import UploadSessions, UploadStatus
from cargobay.storage import layout
from cargobay.storage.driver import StorageDriver


@dataclass(frozen=True)
class Referrers:
    index: dict[str, object]  # an OCI image index listing the referrers
    filtered: bool  # the artifactType filter was applied


class Registry:
    def __init__(self, driver: StorageDriver, *, delete_enabled: bool = False) -> None:
        self.driver = driver
        self.delete_enabled = delete_enabled
        self.blobs = BlobStore(driver)
        self.uploads = UploadSessions(driver, self.blobs)
        self.tags = TagStore(driver)
        self.manifests = ManifestStore(driver, self.blobs, self.tags)
        self.pulls = PullLog(driver)
        self.collection_lock = driver.lock(layout.COLLECTION_LOCK)

    async def put_manifest(
        self, name: str, reference: str, payload: bytes, content_type: str | None
    ) -> Manifest:
        if is_digest(reference):
            digest, tag = check_digest(payload, Digest.parse(reference)), None
        else:
            digest, tag = Digest.of(payload), validate_tag(reference)
        manifest = parse_manifest(payload, content_type, digest)
        async with self.referencing():
            await self.manifests.put(name, manifest, tag)
        return manifest

    async def get_manifest(self, name: str, reference: str) -> Manifest:
        """The manifest, recorded as pulled for retention's guard: a HEAD counts, as a client
        whose image is up to date asks no more than that, and the image is still in use."""
        manifest = await self.manifests.get(name, await self.resolve(name, reference))
        await self.pulls.record(name, manifest.digest)
        return manifest

    async def resolve(self, name: str, reference: str) -> Digest:
        if is_digest(reference):
            return Digest.parse(reference)
        return await self.tags.resolve_tag(name, validate_tag(reference))

    async def delete_manifest(self, name: str, reference: str, *, cascade: bool = False) -> None:
        """By digest: the manifest and its tags (and its referrers with `cascade`).
        By tag: that tag only."""
        self._check_delete_enabled()
        if is_digest(reference):
            await self.manifests.delete(name, Digest.parse(reference), cascade=cascade)
        else:
            await self.tags.untag(name, validate_tag(reference))

    async def delete_blob(self, name: str, digest: Digest) -> None:
        self._check_delete_enabled()
        await self.blobs.unlink(name, digest)

    async def mount_blob(self, name: str, source: str, digest: Digest) -> Blob:
        async with self.referencing():
            return await self.blobs.mount(name, source, digest)

    async def start_upload(self, name: str) -> UploadStatus:
        # Shared lock: the collector may remove a repository it finds empty, uploads included.
        async with self.referencing():
            return await self.uploads.start(name)

    async def commit_upload(self, name: str, upload_id: str, digest: Digest) -> Blob:
        async with self.referencing():
            return await self.uploads.commit(name, upload_id, digest)

    async def check_blob(self, name: str, digest: Digest) -> Blob:
        """HEAD of a blob: a client asking is about to reuse it, so it is claimed."""
        async with self.referencing():
            return await self.blobs.claim(name, digest)

    def referencing(self) -> AbstractAsyncContextManager[None]:
        """Held shared by everything that creates references; the collector holds it exclusive."""
        return self.collection_lock.shared()

    async def list_tags(self, name: str, n: int | None, last: str | None) -> Page:
        return paginate(await self.tags.list_tags(name), n, last)

    async def catalog(self, n: int | None, last: str | None) -> Page:
        return paginate(await list_repositories(self.driver), n, last)

    async def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> Referrers:
        descriptors: list[Descriptor] = [
            m.as_referrer() for m in await self.manifests.referrers(name, subject)
        ]
        if artifact_type:
            descriptors = [d for d in descriptors if d.artifact_type == artifact_type]
        descriptors.sort(key=lambda d: str(d.digest))
        index = {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [d.to_json() for d in descriptors],
        }
        return Referrers(index, filtered=bool(artifact_type))

    def _check_delete_enabled(self) -> None:
        if not self.delete_enabled:
            raise DeleteDisabled()
