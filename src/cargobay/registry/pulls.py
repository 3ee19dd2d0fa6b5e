"""When each manifest was last pulled, kept in storage for retention's "recently pulled" guard.

A pull refreshes an empty marker file beside the manifest's revision link; its
modification time is the answer, one stat to read. Each process writes a
given marker at most once a minute, so a busy tag costs no write per pull.
"""

import time

from cargobay.registry.digests import Digest
from cargobay.registry.inventory import modified
from cargobay.storage import layout
from cargobay.storage.driver import PathNotFound, StorageDriver

RESOLUTION_SECONDS = 60.0
MAX_REMEMBERED = 10_000


class PullLog:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver
        self._written: dict[tuple[str, Digest], float] = {}
        self._collection_lock = driver.lock(layout.COLLECTION_LOCK)

    async def record(self, name: str, digest: Digest) -> None:
        now = time.time()
        if now - self._written.get((name, digest), 0.0) < RESOLUTION_SECONDS:
            return
        if len(self._written) >= MAX_REMEMBERED:
            self._written.clear()
        self._written[(name, digest)] = now
        marker = layout.manifest_pulled_marker(name, digest)
        # Shared lock: a collector removing this manifest's directory must not race the write.
        async with self._collection_lock.shared():
            try:
                await self._driver.touch(marker)
            except PathNotFound:
                if await modified(self._driver, layout.manifest_revision_link(name, digest)) is not None:
                    await self._driver.write_bytes(marker, b"")

    async def last_pull(self, name: str, digest: Digest) -> float | None:
        return await modified(self._driver, layout.manifest_pulled_marker(name, digest))
