"""The shared driver suite against the filesystem and in-memory drivers."""

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from cargobay.storage.driver import StorageDriver
from cargobay.storage.filesystem import FilesystemDriver
from cargobay.storage.memory import MemoryDriver
from tests.storage.driver_suite import CHECKS


@pytest.fixture(params=["filesystem", "memory"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    return FilesystemDriver(tmp_path / "root") if request.param == "filesystem" else MemoryDriver()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_driver_contract(
    driver: StorageDriver, check: Callable[[StorageDriver], Coroutine[Any, Any, None]]
) -> None:
    asyncio.run(check(driver))


def test_filesystem_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)

    async def write_many() -> None:
        await asyncio.gather(*(driver.write_bytes("links/link", str(i).encode()) for i in range(50)))

    asyncio.run(write_many())
    assert os.listdir(tmp_path / "links") == ["link"]
    assert (tmp_path / "links/link").read_text() in {str(i) for i in range(50)}
