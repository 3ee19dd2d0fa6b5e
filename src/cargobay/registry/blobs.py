"""Blobs as a repository sees them: a blob is visible in a repository only through its link.

The bytes live once under `blobs/`, shared by every repository; a repository
links to them when a client uploads or mounts them there.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cargobay.registry import links
from cargobay.registry.digests import Digest
from cargobay.registry.errors import BlobUnknown
from cargobay.storage import layout
from cargobay.storage.driver import PathNotFound, StorageDriver


@dataclass(frozen=True)
class Blob:
    digest: Digest
    size: int


class BlobStore:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def stat(self, name: str, digest: Digest) -> Blob:
        """The blob as linked in `name`, or `BlobUnknown`."""
        if await links.read_link(self._driver, layout.layer_link(name, digest)) != digest:
            raise BlobUnknown(detail={"digest": str(digest)})
        return await self.stat_content(digest)

    async def stat_content(self, digest: Digest) -> Blob:
        """The stored bytes of a digest, whichever repository links them, or `BlobUnknown`."""
        try:
            info = await self._driver.stat(layout.blob_data(digest))
        except PathNotFound:
            raise BlobUnknown(detail={"digest": str(digest)}) from None
        return Blob(digest, info.size)

    def local_path(self, digest: Digest) -> Path | None:
        return self._driver.local_path(layout.blob_data(digest))

    def read(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        return self._driver.read_chunks(layout.blob_data(digest), offset, length)

    async def claim(self, name: str, digest: Digest) -> Blob:
        """The blob as linked in `name`, marked fresh so a running collection keeps it.

        Call it under the shared collection lock, before telling a client the
        blob exists or storing something that references it.
        """
        blob = await self.stat(name, digest)
        try:
            await self._driver.touch(layout.blob_data(digest))
        except PathNotFound:
            raise BlobUnknown(detail={"digest": str(digest)}) from None
        return blob

    async def link_blob_into_repository(self, name: str, digest: Digest) -> None:
        await links.write_link(self._driver, layout.layer_link(name, digest), digest)

    async def mount(self, name: str, source: str, digest: Digest) -> Blob:
        """Link a blob of repository `source` into `name` without copying; `BlobUnknown` if absent."""
        blob = await self.claim(source, digest)
        await self.link_blob_into_repository(name, digest)
        return blob

    async def unlink(self, name: str, digest: Digest) -> None:
        """Remove the blob from a repository; the bytes stay until garbage collection."""
        await self.stat(name, digest)
        await self._driver.delete(layout.layer_dir(name, digest))
