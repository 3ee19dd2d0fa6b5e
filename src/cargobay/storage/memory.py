"""The in-memory driver: the same contract as the filesystem driver, for fast tests.

A process-local dict of files; directories exist implicitly as prefixes of
file paths, as they do in an object store.
"""

import time
from collections.abc import AsyncIterator
from pathlib import Path

from cargobay.storage.driver import FileInfo, PathNotFound, check_path
from cargobay.storage.locks import ReadWriteLock

READ_CHUNK = 1 << 20


class _File:
    __slots__ = ("data", "modified")

    def __init__(self) -> None:
        self.data = bytearray()
        self.modified = time.time()


class MemoryAppender:
    def __init__(self, file: _File) -> None:
        self._file = file

    async def write(self, data: bytes) -> None:
        self._file.data += data
        self._file.modified = time.time()

    async def close(self) -> None:
        return None


class MemoryDriver:
    def __init__(self) -> None:
        self._files: dict[str, _File] = {}
        self._locks: dict[str, ReadWriteLock] = {}

    def local_path(self, path: str) -> Path | None:
        return None

    def _children(self, path: str) -> list[str]:
        prefix = check_path(path) + "/"
        return [p for p in self._files if p.startswith(prefix)]

    async def stat(self, path: str) -> FileInfo:
        file = self._files.get(check_path(path))
        if file is not None:
            return FileInfo(size=len(file.data), modified=file.modified, is_dir=False)
        children = self._children(path)
        if not children:
            raise PathNotFound(path)
        newest = max(self._files[c].modified for c in children)
        return FileInfo(size=0, modified=newest, is_dir=True)

    async def read_bytes(self, path: str) -> bytes:
        file = self._files.get(check_path(path))
        if file is None:
            raise PathNotFound(path)
        return bytes(file.data)

    async def write_bytes(self, path: str, data: bytes) -> None:
        file = _File()
        file.data += data
        self._files[check_path(path)] = file

    async def open_append(self, path: str) -> MemoryAppender:
        return MemoryAppender(self._files.setdefault(check_path(path), _File()))

    async def truncate(self, path: str, size: int) -> None:
        file = self._files.get(check_path(path))
        if file is None:
            raise PathNotFound(path)
        del file.data[size:]

    async def read_chunks(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        data = await self.read_bytes(path)
        end = len(data) if length is None else min(len(data), offset + length)
        for start in range(offset, end, READ_CHUNK):
            yield data[start : min(end, start + READ_CHUNK)]

    async def move(self, source: str, destination: str) -> None:
        file = self._files.pop(check_path(source), None)
        if file is None:
            raise PathNotFound(source)
        self._files[check_path(destination)] = file

    async def delete(self, path: str) -> None:
        self._files.pop(check_path(path), None)
        for child in self._children(path):
            del self._files[child]

    async def list(self, path: str) -> list[str]:
        prefix = check_path(path) + "/"
        names = {p[len(prefix) :].split("/", 1)[0] for p in self._children(path)}
        if not names:
            raise PathNotFound(path)
        return sorted(names)

    async def touch(self, path: str) -> None:
        file = self._files.get(check_path(path))
        if file is None:
            raise PathNotFound(path)
        file.modified = time.time()

    def lock(self, path: str) -> ReadWriteLock:
        return self._locks.setdefault(check_path(path), ReadWriteLock())
