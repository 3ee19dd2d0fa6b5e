"""The collection lock: many writers of references at once, or one garbage collector.

Operations that make content referenced (finishing an upload, mounting, pushing
a manifest, answering HEAD for a blob a client is about to reuse) hold it
shared while they refresh and check what they reference; the collector holds
it exclusive while it re-checks and deletes. So a blob is either deleted
before a client checked it (the client uploads it again) or seen fresh by the
collector (kept) — never deleted after a client was told it exists.

Within a process an asyncio read-write lock with writer preference; across
processes on one host `flock(2)` on a file, held once per process for all its
shared holders.
"""

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from cargobay.blocking import run_blocking


class ReadWriteLock:
    """Shared holders run together; an exclusive holder waits for them and blocks new ones.

    Fair both ways: a waiting exclusive holder keeps new shared ones out (a collector is
    not starved by a busy registry), and when it lets go, the shared holders that waited
    for it go first, before it or another exclusive holder takes the lock again (a
    collector sweeping in short holds lets pushes through between them).
    """

    def __init__(self) -> None:
        self._condition = asyncio.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._readers_turn = False  # an exclusive holder left: the readers it kept waiting go first

    def _reader_may_enter(self) -> bool:
        return not self._writer and (not self._writers_waiting or self._readers_turn)

    def _writer_may_enter(self) -> bool:
        return not self._writer and self._readers == 0 and not self._readers_turn

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._condition:
            self._readers_waiting += 1
            try:
                await self._condition.wait_for(self._reader_may_enter)
            finally:
                self._readers_waiting -= 1
                if self._readers_turn and not self._readers_waiting:
                    self._readers_turn = False  # every reader that waited is in (or gave up)
                    self._condition.notify_all()
            if self._readers == 0:
                await self._first_reader_entered()  # the others wait: the flock must be ours first
            self._readers += 1
        try:
            yield
        finally:
            async with self._condition:
                self._readers -= 1
                last = self._readers == 0
                if last:
                    await self._last_reader_left()
                    self._condition.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._condition:
            self._writers_waiting += 1
            try:
                await self._condition.wait_for(self._writer_may_enter)
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            await self._writer_entered()
            try:
                yield
            finally:
                await self._writer_left()
        finally:
            async with self._condition:
                self._writer = False
                self._readers_turn = self._readers_waiting > 0
                self._condition.notify_all()

    async def _first_reader_entered(self) -> None:
        return None

    async def _last_reader_left(self) -> None:
        return None

    async def _writer_entered(self) -> None:
        return None

    async def _writer_left(self) -> None:
        return None


class FileReadWriteLock(ReadWriteLock):
    """The in-process lock, extended to every process that shares the file system."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path
        self._fd: int | None = None

    async def _first_reader_entered(self) -> None:
        self._fd = await self._locked(fcntl.LOCK_SH)

    async def _last_reader_left(self) -> None:
        await self._release()

    async def _writer_entered(self) -> None:
        self._fd = await self._locked(fcntl.LOCK_EX)

    async def _locked(self, operation: int) -> int:
        """A descriptor holding the flock. Waiting for it may be cancelled, but the thread
        still takes the lock: it is then released at once instead of held forever."""
        attempt = asyncio.ensure_future(run_blocking(_open_locked, self._path, operation))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            attempt.add_done_callback(_close_if_locked)
            raise

    async def _writer_left(self) -> None:
        await self._release()

    async def _release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            await run_blocking(os.close, fd)  # closing the descriptor drops the flock


def _close_if_locked(attempt: "asyncio.Future[int]") -> None:
    if not attempt.cancelled() and attempt.exception() is None:
        os.close(attempt.result())


def _open_locked(path: Path, operation: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, operation)
    except BaseException:
        os.close(fd)
        raise
    return fd
