"""The filesystem driver: the default, embedded, no service needed.

Every system call leaves the event loop through `run_blocking`, and the writes of
upload bytes through `run_bulk` (see `cargobay.blocking`). Atomic replacement is a
write to a hidden temporary file in the same directory and
`os.replace`, so a crash leaves the old file or the new one.
"""

import errno
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from cargobay.blocking import run_blocking, run_bulk
from cargobay.storage.driver import FileInfo, PathNotFound, check_path
from cargobay.storage.locks import FileReadWriteLock

READ_CHUNK = 1 << 20
TEMP_PREFIX = ".tmp-"


class FileAppender:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    async def write(self, data: bytes) -> None:
        await run_bulk(self._handle.write, data)

    async def close(self) -> None:
        await run_blocking(self._handle.close)


class FilesystemDriver:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, FileReadWriteLock] = {}

    def _full(self, path: str) -> Path:
        return self.root / check_path(path)

    def local_path(self, path: str) -> Path | None:
        return self._full(path)

    async def stat(self, path: str) -> FileInfo:
        full = self._full(path)

        def stat() -> FileInfo:
            try:
                st = full.stat()
            except (FileNotFoundError, NotADirectoryError):
                raise PathNotFound(path) from None
            return FileInfo(size=st.st_size, modified=st.st_mtime, is_dir=full.is_dir())

        return await run_blocking(stat)

    async def read_bytes(self, path: str) -> bytes:
        full = self._full(path)

        def read() -> bytes:
            try:
                return full.read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise PathNotFound(path) from None

        return await run_blocking(read)

    async def write_bytes(self, path: str, data: bytes) -> None:
        await run_blocking(_write_atomic, self._full(path), data)

    async def open_append(self, path: str) -> FileAppender:
        full = self._full(path)

        def open_file() -> BinaryIO:
            full.parent.mkdir(parents=True, exist_ok=True)
            return full.open("ab")

        return FileAppender(await run_blocking(open_file))

    async def truncate(self, path: str, size: int) -> None:
        await run_blocking(os.truncate, self._full(path), size)

    async def read_chunks(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        full = self._full(path)
        try:
            handle = await run_blocking(full.open, "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        try:
            await run_blocking(handle.seek, offset)
            remaining = length
            while remaining is None or remaining > 0:
                want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await run_blocking(handle.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await run_blocking(handle.close)

    async def move(self, source: str, destination: str) -> None:
        src, dst = self._full(source), self._full(destination)

        def move() -> None:
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(src, dst)
            except FileNotFoundError:
                raise PathNotFound(source) from None

        await run_blocking(move)

    async def delete(self, path: str) -> None:
        await run_blocking(_remove_tree_or_file, self._full(path))

    async def list(self, path: str) -> list[str]:
        full = self._full(path)

        def list_dir() -> list[str]:
            try:
                return [n for n in os.listdir(full) if not n.startswith(TEMP_PREFIX)]
            except (FileNotFoundError, NotADirectoryError):
                raise PathNotFound(path) from None

        return await run_blocking(list_dir)

    async def touch(self, path: str) -> None:
        full = self._full(path)

        def touch() -> None:
            try:
                os.utime(full)
            except (FileNotFoundError, NotADirectoryError):
                raise PathNotFound(path) from None

        await run_blocking(touch)

    def lock(self, path: str) -> FileReadWriteLock:
        if path not in self._locks:
            self._locks[path] = FileReadWriteLock(self._full(path))
        return self._locks[path]


def _write_atomic(full: Path, data: bytes) -> None:
    full.parent.mkdir(parents=True, exist_ok=True)
    temp = full.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        temp.write_bytes(data)
        os.replace(temp, full)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _remove_tree_or_file(full: Path) -> None:
    try:
        shutil.rmtree(full)
    except NotADirectoryError:
        full.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    except OSError as error:
        if error.errno != errno.ENOTDIR:
            raise
        full.unlink(missing_ok=True)
