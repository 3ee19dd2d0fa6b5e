"""The shared driver suite against the filesystem and in-memory drivers."""

import asyncio
import os
import subprocess
import sys
import time
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


def test_the_collection_lock_holds_across_processes(tmp_path: Path) -> None:
    """A collector in another process (here: flock held by a child) keeps writers waiting."""
    lock_file = tmp_path / "cargobay/collection.lock"
    lock_file.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX);"
            " print('held', flush=True); time.sleep(0.5)",
            str(lock_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    driver = FilesystemDriver(tmp_path)

    async def enter_shared() -> float:
        started = time.monotonic()
        async with driver.lock("cargobay/collection.lock").shared():
            return time.monotonic() - started

    waited = asyncio.run(enter_shared())
    holder.wait(10)
    assert waited > 0.2  # it had to wait for the other process's exclusive lock
