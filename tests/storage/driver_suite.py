"""One contract, run against every storage driver (see test_drivers.py for the drivers).

Each check is a coroutine taking a fresh driver; what it asserts is what the
registry layer relies on.
"""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from cargobay.storage.driver import InvalidPath, PathNotFound, StorageDriver


async def write_read_stat(driver: StorageDriver) -> None:
    await driver.write_bytes("a/b/file", b"hello")
    assert await driver.read_bytes("a/b/file") == b"hello"
    info = await driver.stat("a/b/file")
    assert (info.size, info.is_dir) == (5, False)
    assert (await driver.stat("a/b")).is_dir
    await driver.write_bytes("a/b/file", b"replaced")
    assert await driver.read_bytes("a/b/file") == b"replaced"


async def missing_paths_raise_path_not_found(driver: StorageDriver) -> None:
    for call in (driver.read_bytes, driver.stat, driver.list):
        with pytest.raises(PathNotFound):
            await call("no/such/path")
    await driver.delete("no/such/path")  # deleting what is not there is fine


async def append_truncate_and_read_ranges(driver: StorageDriver) -> None:
    appender = await driver.open_append("up/data")
    await appender.write(b"0123")
    await appender.write(b"4567")
    await appender.close()
    appender = await driver.open_append("up/data")
    await appender.write(b"89")
    await appender.close()
    assert await driver.read_bytes("up/data") == b"0123456789"
    assert b"".join([c async for c in driver.read_chunks("up/data", 2, 5)]) == b"23456"
    assert b"".join([c async for c in driver.read_chunks("up/data", 7)]) == b"789"
    await driver.truncate("up/data", 4)
    assert await driver.read_bytes("up/data") == b"0123"


async def large_files_stream_in_bounded_chunks(driver: StorageDriver) -> None:
    appender = await driver.open_append("big")
    for _ in range(5):
        await appender.write(b"x" * (1 << 20))
    await appender.close()
    sizes = [len(c) async for c in driver.read_chunks("big")]
    assert sum(sizes) == 5 << 20
    assert max(sizes) <= 1 << 20


async def move_replaces_atomically(driver: StorageDriver) -> None:
    await driver.write_bytes("src/data", b"new")
    await driver.write_bytes("dst/deep/data", b"old")
    await driver.move("src/data", "dst/deep/data")
    assert await driver.read_bytes("dst/deep/data") == b"new"
    with pytest.raises(PathNotFound):
        await driver.read_bytes("src/data")
    with pytest.raises(PathNotFound):
        await driver.move("src/data", "elsewhere")


async def list_and_delete_trees(driver: StorageDriver) -> None:
    for path in ("r/x/link", "r/y/link", "r/y/z/link", "r/file"):
        await driver.write_bytes(path, b".")
    assert sorted(await driver.list("r")) == ["file", "x", "y"]
    await driver.delete("r/y")
    assert sorted(await driver.list("r")) == ["file", "x"]
    await driver.delete("r/file")
    assert await driver.list("r") == ["x"]


async def paths_that_escape_the_root_are_refused(driver: StorageDriver) -> None:
    for path in ("../etc/passwd", "/etc/passwd", "a/../../b", "a//b", ""):
        with pytest.raises(InvalidPath):
            await driver.read_bytes(path)
        with pytest.raises(InvalidPath):
            await driver.write_bytes(path, b"x")


async def lock_is_shared_among_writers_and_exclusive_for_the_collector(driver: StorageDriver) -> None:
    lock = driver.lock("cargobay/collection.lock")
    assert driver.lock("cargobay/collection.lock") is lock
    events: list[str] = []

    async def writer(name: str) -> None:
        async with lock.shared():
            events.append(f"{name} in")
            await asyncio.sleep(0.05)
            events.append(f"{name} out")

    async def collector() -> None:
        await asyncio.sleep(0.01)  # arrives while the writers hold the lock
        async with lock.exclusive():
            events.append("collector in")
            await asyncio.sleep(0.02)
            events.append("collector out")

    async def late_writer() -> None:
        await asyncio.sleep(0.02)  # arrives while the collector waits: must not overtake it
        await writer("late")

    await asyncio.gather(writer("a"), writer("b"), collector(), late_writer())
    assert events[:2] == ["a in", "b in"]  # shared: both at once
    collector_in = events.index("collector in")
    assert events.index("a out") < collector_in
    assert events.index("b out") < collector_in
    assert events.index("collector out") < events.index("late in")  # writer preference


async def a_collector_in_short_holds_lets_waiting_writers_in_between(driver: StorageDriver) -> None:
    """The sweep takes the lock again and again; a push that arrives meanwhile must not wait
    for all of the holds, only for the one under way."""
    lock = driver.lock("cargobay/collection.lock")
    events: list[str] = []

    async def collector() -> None:
        for hold in range(5):
            async with lock.exclusive():
                events.append(f"hold {hold}")
                await asyncio.sleep(0.02)

    async def push() -> None:
        await asyncio.sleep(0.01)  # arrives during the first hold
        async with lock.shared():
            events.append("push")

    await asyncio.gather(collector(), push())
    assert events.index("push") == 1, events
    assert events[-1] == "hold 4"  # and the collector still finishes


CHECKS: list[Callable[[StorageDriver], Coroutine[Any, Any, None]]] = [
    write_read_stat,
    missing_paths_raise_path_not_found,
    append_truncate_and_read_ranges,
    large_files_stream_in_bounded_chunks,
    move_replaces_atomically,
    list_and_delete_trees,
    paths_that_escape_the_root_are_refused,
    lock_is_shared_among_writers_and_exclusive_for_the_collector,
    a_collector_in_short_holds_lets_waiting_writers_in_between,
]
