"""Upload sessions: bytes arrive in one piece or many, and become a blob only once verified.

All state of a session lives in storage (`_uploads/<uuid>/data` and
`startedat`), so any worker process can continue an upload another began. A
process keeps the running sha256 of the sessions it served as a cache; a
process without it, or with one at another offset, hashes the stored bytes
again. The client's digest is never trusted: `commit` compares it with what
was hashed, and only then moves the bytes into `blobs/` by an atomic rename.
"""

import asyncio
import datetime
import hashlib
import logging
import re
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from cargobay.blocking import run_bulk
from cargobay.registry import links
from cargobay.registry.blobs import Blob, BlobStore
from cargobay.registry.catalog import walk_repositories
from cargobay.registry.digests import Digest
from cargobay.registry.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    RangeInvalid,
)
from cargobay.storage import layout
from cargobay.storage.driver import Appender, PathNotFound, StorageDriver

log = logging.getLogger(__name__)

WRITE_BLOCK = 1 << 20  # bytes hashed and written per step: big enough to leave the loop cheaply
MAX_CACHED_HASHES = 1024
_UPLOAD_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class UploadStatus:
    upload_id: str
    size: int  # bytes received so far


@dataclass
class _RunningHash:
    size: int
    hasher: "hashlib._Hash"


class UploadSessions:
    def __init__(self, driver: StorageDriver, blobs: BlobStore) -> None:
        self._driver = driver
        self._blobs = blobs
        self._hashes: OrderedDict[str, _RunningHash] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def start(self, name: str) -> UploadStatus:
        upload_id = str(uuid.uuid4())
        started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await self._driver.write_bytes(layout.upload_started_at(name, upload_id), started.encode())
        appender = await self._driver.open_append(layout.upload_data(name, upload_id))
        await appender.close()
        self._hashes[upload_id] = _RunningHash(0, hashlib.sha256())
        self._trim_cache()
        return UploadStatus(upload_id, 0)

    async def status(self, name: str, upload_id: str) -> UploadStatus:
        return UploadStatus(upload_id, await self._stored_size(name, upload_id))

    async def append(
        self,
        name: str,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> UploadStatus:
        """Append a chunk; `start` and `length` come from Content-Range when the client sent one.

        A chunk that does not start where the upload ends is refused before a
        byte is written; a chunk whose length differs from what the client
        announced, or that breaks off, is cut off again, so a refused chunk leaves the
        session as it was.
        """
        async with self._lock(upload_id):
            size = await self._stored_size(name, upload_id)
            if start is not None and start != size:
                raise RangeInvalid(f"chunk starts at {start} but the upload has {size} bytes", uploaded=size)
            running = await self._running_hash(name, upload_id, size)
            data_path = layout.upload_data(name, upload_id)
            self._hashes.pop(upload_id, None)  # until the write succeeds, the hash is suspect
            try:
                written = await _hash_and_append(
                    await self._driver.open_append(data_path), chunks, running.hasher
                )
            except BaseException:  # the client went away mid-chunk: none of it was accepted
                await self._driver.truncate(data_path, size)
                raise
            if length is not None and written != length:
                await self._driver.truncate(data_path, size)
                raise BlobUploadInvalid(f"chunk has {written} bytes but Content-Range announced {length}")
            running.size = size + written
            self._hashes[upload_id] = running
            self._trim_cache()
            return UploadStatus(upload_id, running.size)

    async def commit(self, name: str, upload_id: str, digest: Digest) -> Blob:
        """Verify the uploaded bytes against `digest` and make them a blob of `name`.

        Call it under the shared collection lock (`Registry.commit_upload` does).

        On a mismatch the session is cancelled, as registry:2 does, and nothing
        under `blobs/` is touched.
        """
        async with self._lock(upload_id):
            size = await self._stored_size(name, upload_id)
            actual = await self._digest_of_upload(name, upload_id, size, digest.algorithm)
            if actual != digest:
                await self._remove(name, upload_id)
                raise DigestInvalid(
                    f"uploaded content has digest {actual}, not {digest}",
                    detail={"digest": str(digest)},
                )
            await self._driver.move(layout.upload_data(name, upload_id), layout.blob_data(digest))
            await self._driver.touch(layout.blob_data(digest))  # fresh: the rename kept the old mtime
            await self._blobs.link_blob_into_repository(name, digest)
            await self._remove(name, upload_id)
            return Blob(digest, size)

    async def cancel(self, name: str, upload_id: str) -> None:
        async with self._lock(upload_id):
            await self._stored_size(name, upload_id)
            await self._remove(name, upload_id)

    async def purge(self, older_than: datetime.timedelta, *, dry_run: bool = False) -> list[str]:
        """Remove sessions started longer ago than `older_than`; returns `name/uuid` of each."""
        cutoff = datetime.datetime.now(datetime.UTC) - older_than
        purged: list[str] = []
        async for name in walk_repositories(self._driver, include_without_manifests=True):
            for upload_id in await links.list_or_empty(self._driver, layout.uploads(name)):
                started = await self._started_at(name, upload_id)
                if started is not None and started < cutoff:
                    purged.append(f"{name}/{upload_id}")
                    if not dry_run:
                        await self._remove(name, upload_id)
        return purged

    async def _started_at(self, name: str, upload_id: str) -> datetime.datetime | None:
        try:
            text = (await self._driver.read_bytes(layout.upload_started_at(name, upload_id))).decode()
            return datetime.datetime.fromisoformat(text.strip())
        except (PathNotFound, ValueError, UnicodeDecodeError):
            try:
                modified = (await self._driver.stat(layout.upload_dir(name, upload_id))).modified
            except PathNotFound:
                return None
            return datetime.datetime.fromtimestamp(modified, datetime.UTC)

    def _lock(self, upload_id: str) -> asyncio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = asyncio.Lock()
        return lock

    async def _stored_size(self, name: str, upload_id: str) -> int:
        if not _UPLOAD_ID.match(upload_id):
            raise BlobUploadUnknown(f"invalid upload id {upload_id[:100]!r}")
        try:
            return (await self._driver.stat(layout.upload_data(name, upload_id))).size
        except PathNotFound:
            raise BlobUploadUnknown(detail={"upload": upload_id}) from None

    async def _running_hash(self, name: str, upload_id: str, size: int) -> _RunningHash:
        running = self._hashes.get(upload_id)
        if running is not None and running.size == size:
            return running
        log.debug("re-hashing %d stored bytes of upload %s", size, upload_id)
        hasher = await _hash_stream(self._driver.read_chunks(layout.upload_data(name, upload_id)), "sha256")
        return _RunningHash(size, hasher)

    async def _digest_of_upload(self, name: str, upload_id: str, size: int, algorithm: str) -> Digest:
        if algorithm == "sha256":
            running = await self._running_hash(name, upload_id, size)
            return Digest("sha256", running.hasher.hexdigest())
        stream = self._driver.read_chunks(layout.upload_data(name, upload_id))
        return Digest.parse(f"{algorithm}:{(await _hash_stream(stream, algorithm)).hexdigest()}")

    async def _remove(self, name: str, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        await self._driver.delete(layout.upload_dir(name, upload_id))

    def _trim_cache(self) -> None:
        while len(self._hashes) > MAX_CACHED_HASHES:
            self._hashes.popitem(last=False)


async def _hash_stream(chunks: AsyncIterator[bytes], algorithm: str) -> "hashlib._Hash":
    hasher = hashlib.new(algorithm)
    async for chunk in chunks:
        await run_bulk(hasher.update, chunk)
    return hasher


async def _hash_and_append(appender: Appender, chunks: AsyncIterable[bytes], hasher: "hashlib._Hash") -> int:
    """Write and hash in blocks, overlapping each block's disk write and hash with the next read."""
    written = 0
    pending: asyncio.Future[tuple[None, None]] | None = None
    try:
        async for block in _blocks(chunks):
            if pending is not None:
                await pending
            pending = asyncio.gather(run_bulk(hasher.update, block), appender.write(block))
            written += len(block)
        if pending is not None:
            await pending
            pending = None
    finally:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
        await appender.close()
    return written


async def _blocks(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Regroup the network's small chunks into blocks of about `WRITE_BLOCK` bytes."""
    parts: list[bytes] = []
    buffered = 0
    async for chunk in chunks:
        parts.append(chunk)
        buffered += len(chunk)
        if buffered >= WRITE_BLOCK:
            yield b"".join(parts)
            parts, buffered = [], 0
    if parts:
        yield b"".join(parts)
