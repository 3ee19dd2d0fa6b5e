"""The machine's limits, measured in the same run, so each figure reads as a fraction of them.

A push can go no faster than the server can hash (sha256, per upload) and write (the
storage directory, into the page cache); a pull no faster than loopback TCP carries
bytes. Each is measured as simply as possible, with nothing of either server
involved:
  sha256   hashlib over an in-memory buffer: on one core (issue 5's limit), and on
           every core at once (threads: hashlib releases the GIL on big buffers);
  loopback one TCP connection on 127.0.0.1, a sender here and a receiver in another
           process (so each has its own core), 1 MiB writes and reads;
  write    new files in the storage directory written in 8 MiB blocks and flushed (to
           the page cache: no fsync, as neither server syncs on upload): one stream
           (issue 5's limit), and one stream per core at once.

Both "every core" figures are there because a server with several threads or worker
processes hashes and writes several uploads at once and can pass the one-stream
limits. On a VM, page-cache writes are slow where the host has not backed the guest's
memory yet (fresh pages), and memory freed moments ago is fast again for a few
seconds; the write tests therefore write new files and delete them only at the end,
after an `os.sync()` so that earlier writeback does not run meanwhile, and the
first server starts only once that memory has gone cold again (about 10 s; a
server's own run deletes nothing until it ends, and the next server starts more
than 20 s later), so that neither server writes into memory the other freed.
"""

import hashlib
import multiprocessing
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.content import pool_bytes

BLOCK = 1 << 20
WRITE_BLOCK = 8 << 20
TIMEOUT_SECONDS = 120.0
SETTLE_SECONDS = 10.0  # after deleting the write test's files, until their memory is cold again


@dataclass(frozen=True)
class MachineLimits:
    cpus: int
    sha256_mb_s: float
    sha256_all_cores_mb_s: float
    loopback_tcp_mb_s: float
    storage_write_mb_s: float
    storage_write_all_cores_mb_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _in_parallel(streams: int, work: Callable[[int], None]) -> float:
    """Run work(0..streams-1) in threads at once; the wall seconds until all are done."""
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            work(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), name=f"limit-{i}") for i in range(streams)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_SECONDS)
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    return seconds


def sha256_mb_s(total: int, streams: int = 1) -> float:
    """hashlib sha256 throughput over `streams` threads, in MB/s (10^6 bytes)."""
    buffer = pool_bytes(min(total, 64 << 20), "cargobay-bench/sha256")
    rounds = max(1, total // streams // len(buffer))

    def hash_rounds(_: int) -> None:
        hasher = hashlib.sha256()
        for _ in range(rounds):
            hasher.update(buffer)
        hasher.digest()

    return streams * rounds * len(buffer) / _in_parallel(streams, hash_rounds) / 1e6


def _receive(port: int, total: int) -> None:
    """The receiving end, in its own process: read `total` bytes, then answer one byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS) as sock:
        buffer = bytearray(BLOCK)
        view = memoryview(buffer)
        received = 0
        while received < total:
            n = sock.recv_into(view)
            if n == 0:
                break
            received += n
        sock.sendall(b"k")


def loopback_tcp_mb_s(total: int) -> float:
    """Bytes per second through one loopback TCP connection, sender and receiver on separate cores."""
    total -= total % BLOCK
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(TIMEOUT_SECONDS)
        port = server.getsockname()[1]
        context = multiprocessing.get_context("spawn")
        receiver = context.Process(target=_receive, args=(port, total), daemon=True)
        receiver.start()
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(TIMEOUT_SECONDS)
                block = memoryview(pool_bytes(BLOCK, "cargobay-bench/tcp"))
                began = time.perf_counter()
                for _ in range(total // BLOCK):
                    conn.sendall(block)
                if conn.recv(1) != b"k":
                    raise RuntimeError("loopback receiver did not confirm")
                seconds = time.perf_counter() - began
        finally:
            receiver.join(timeout=10)
            if receiver.is_alive():
                receiver.terminate()
                receiver.join(timeout=5)
    return total / seconds / 1e6


def storage_write_mb_s(directory: Path, total: int, streams: int, name: str) -> float:
    """New files in `directory`, one per stream, written at once and flushed: MB/s in all.

    The files are left for the caller to delete (see the module's note on fresh memory).
    """
    block = pool_bytes(WRITE_BLOCK, "cargobay-bench/write")
    rounds = max(1, total // streams // WRITE_BLOCK)
    paths = [directory / f"{name}-{n}" for n in range(streams)]

    def write(index: int) -> None:
        with paths[index].open("wb", buffering=0) as file:
            for _ in range(rounds):
                file.write(block)
            file.flush()

    return streams * rounds * WRITE_BLOCK / _in_parallel(streams, write) / 1e6


def measure(directory: Path, sha256_bytes: int, tcp_bytes: int, write_bytes: int) -> MachineLimits:
    cpus = os.cpu_count() or 1
    scratch = directory / "write-test"
    scratch.mkdir()
    os.sync()  # no earlier writeback running meanwhile
    try:
        one_stream_write = storage_write_mb_s(scratch, write_bytes, 1, "one")
        all_cores_write = storage_write_mb_s(scratch, write_bytes, cpus, "all")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        deleted = time.monotonic()
    limits = MachineLimits(
        cpus=cpus,
        sha256_mb_s=sha256_mb_s(sha256_bytes),
        sha256_all_cores_mb_s=sha256_mb_s(sha256_bytes, streams=cpus),
        loopback_tcp_mb_s=loopback_tcp_mb_s(tcp_bytes),
        storage_write_mb_s=one_stream_write,
        storage_write_all_cores_mb_s=all_cores_write,
    )
    # the first server's first push must not write into the memory just freed (see above)
    time.sleep(max(0.0, min(SETTLE_SECONDS, deleted + SETTLE_SECONDS - time.monotonic())))
    return limits
