"""The narrow interface every storage driver implements.

Paths are `/`-separated strings relative to the driver's root, built only by
`cargobay.storage.layout`. Drivers must make `write_bytes` and `move` atomic:
a reader sees the old content or the new one, never a torn file. That is what
lets a blob or manifest appear only after its digest was verified.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cargobay.storage.locks import ReadWriteLock


class PathNotFound(Exception):
    """The path does not exist in storage."""

    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path}")
        self.path = path


class InvalidPath(ValueError):
    """A path that could escape the driver's root; a bug in the caller, never user input."""


@dataclass(frozen=True)
class FileInfo:
    size: int
    modified: float  # seconds since the epoch
    is_dir: bool


class Appender(Protocol):
    """An open file that grows at its end; `close` must be awaited."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class StorageDriver(Protocol):
    async def stat(self, path: str) -> FileInfo:
        """Size and modification time, or `PathNotFound`."""
        ...

    async def read_bytes(self, path: str) -> bytes:
        """The whole content of a small file (a link, a manifest), or `PathNotFound`."""
        ...

    async def write_bytes(self, path: str, data: bytes) -> None:
        """Replace the file atomically, creating parent directories."""
        ...

    async def open_append(self, path: str) -> Appender:
        """Open a file for appending, creating it and its parents when missing."""
        ...

    async def truncate(self, path: str, size: int) -> None:
        """Cut a file back to `size` bytes (to undo a rejected chunk)."""
        ...

    def read_chunks(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream a byte range of a file in bounded chunks."""
        ...

    def local_path(self, path: str) -> Path | None:
        """A path on the local file system for sendfile, or None when the driver has none."""
        ...

    async def move(self, source: str, destination: str) -> None:
        """Rename atomically, replacing `destination`, creating its parents."""
        ...

    async def delete(self, path: str) -> None:
        """Remove a file or a whole tree; a missing path is not an error."""
        ...

    async def list(self, path: str) -> list[str]:
        """Names of the direct children of a directory, or `PathNotFound`."""
        ...

    async def touch(self, path: str) -> None:
        """Set the modification time to now (freshness for garbage collection), or `PathNotFound`."""
        ...

    def lock(self, path: str) -> ReadWriteLock:
        """The shared/exclusive lock named by `path`, the same object for the same path."""
        ...


def check_path(path: str) -> str:
    """Refuse paths that are absolute or climb out of the root (defence in depth)."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidPath(f"invalid storage path {path!r}")
    return path
