"""A 2 GiB blob goes in and out of a real server while its memory stays flat.

Layers of several GiB are ordinary (CUDA, model weights). A server that
buffered a request or response body would need that much RAM per client, so
the rise of the server's resident set over its idle baseline is bounded here
by a constant that has nothing to do with the blob's size. The test never
holds the blob either: the bytes come from a deterministic generator, are
hashed as they are sent, and are hashed again as they come back.
"""

import hashlib
import os
import shutil
import statistics
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.server import RegistryServer, start_server
from tests.support.tools import unavailable

pytestmark = pytest.mark.e2e

MIB = 1 << 20
GIB = 1 << 30
BLOB_SIZE = 2 * GIB
BLOCK = MIB  # what the generator yields per step; the server regroups as it likes
POOL_SIZE = 8 * MIB  # the distinct bytes blocks are cut from: cheap to make, not periodic per block
SEED = b"cargobay large blob"
MAX_RSS_RISE = 64 * MIB
FREE_DISK_NEEDED = BLOB_SIZE + GIB
SAMPLE_SECONDS = 0.02
TIMEOUT = (10, 600)  # (connect, read): a 2 GiB body may take a while on a slow disk
NAME = "big/layer"


class Content:
    """The blob's bytes as a pure function of their position: generated again, never stored.

    Block `i` is its index followed by a slice of a pseudo-random pool at an
    offset that depends on `i`, so no two blocks are equal and a block
    delivered twice, dropped or out of order changes the digest.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._pool = memoryview(hashlib.shake_256(SEED).digest(POOL_SIZE))

    def block(self, index: int) -> bytes:
        offset = (index * 1_000_003) % (POOL_SIZE - BLOCK)
        data = b"".join((struct.pack(">Q", index), self._pool[offset : offset + BLOCK - 8]))
        return data[: max(0, min(BLOCK, self.size - index * BLOCK))]

    def blocks(self) -> Iterator[bytes]:
        for index in range((self.size + BLOCK - 1) // BLOCK):
            yield self.block(index)

    def slice(self, start: int, stop: int) -> bytes:
        """Bytes `start` to `stop` (exclusive), assembled from the blocks they fall in."""
        first, last = start // BLOCK, (stop - 1) // BLOCK
        joined = b"".join(self.block(i) for i in range(first, last + 1))
        return joined[start - first * BLOCK : stop - first * BLOCK]


class HashingBody:
    """A request body that hashes each chunk as requests sends it, so the digest costs no second pass."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.hasher = hashlib.sha256()
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.hasher.update(chunk)
            self.sent += len(chunk)
            yield chunk

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


def vm_rss(pid: int | str) -> int:
    """Resident set size in bytes from /proc, which is what the kernel would have to find room for."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class RssSampler:
    """Polls the server's and this process's RSS in a thread; a short spike between polls of 20 ms
    is the only thing it can miss, and a buffered body would last far longer than that."""

    def __init__(self, server: RegistryServer) -> None:
        self._server = server
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.server_peak = 0
        self.client_peak = 0
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.server_peak = max(self.server_peak, self._server.rss_bytes())
            self.client_peak = max(self.client_peak, vm_rss("self"))
            self.samples += 1
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "RSS sampler did not stop"


def cpu_seconds(pid: int) -> float:
    """User plus system time a process has used, to tell whether the server or the client limits the rate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_rss(server: RegistryServer, samples: int = 10) -> int:
    """The median of a few samples, so one odd reading does not set the bar."""
    readings = []
    for _ in range(samples):
        readings.append(server.rss_bytes())
        time.sleep(SAMPLE_SECONDS)
    return int(statistics.median(readings))


def blob_url(server: RegistryServer, digest: str) -> str:
    return f"{server.url}/v2/{NAME}/blobs/{digest}"


def push_streamed(session: requests.Session, server: RegistryServer, content: Content) -> str:
    """`docker push`'s way: POST, one PATCH streaming the whole body chunked, PUT ?digest= without a body."""
    started = session.post(f"{server.url}/v2/{NAME}/blobs/uploads/", timeout=TIMEOUT)
    assert started.status_code == 202, started.text
    body = HashingBody(content.blocks())
    patched = session.patch(
        started.headers["Location"],
        data=body,
        headers={"Content-Type": "application/octet-stream"},
        timeout=TIMEOUT,
    )
    assert patched.status_code == 202, patched.text
    assert "Content-Range" not in patched.request.headers
    assert patched.request.headers.get("Transfer-Encoding") == "chunked"
    assert body.sent == content.size
    assert patched.headers["Range"] == f"0-{content.size - 1}"
    done = session.put(patched.headers["Location"], params={"digest": body.digest}, timeout=TIMEOUT)
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == body.digest
    return body.digest


def pull_streamed(session: requests.Session, server: RegistryServer, digest: str, size: int) -> str:
    """GET the blob and hash it as it arrives; returns the digest of what came back."""
    hasher = hashlib.sha256()
    received = 0
    with session.get(blob_url(server, digest), stream=True, timeout=TIMEOUT) as response:
        assert response.status_code == 200, response.text
        assert int(response.headers["Content-Length"]) == size
        assert response.headers["Docker-Content-Digest"] == digest
        for chunk in response.iter_content(chunk_size=BLOCK):
            hasher.update(chunk)
            received += len(chunk)
    assert received == size
    return "sha256:" + hasher.hexdigest()


def check_range(
    session: requests.Session, server: RegistryServer, digest: str, content: Content, start: int, stop: int
) -> None:
    """A ranged GET answers 206 with exactly the bytes asked for, as resumed pulls need."""
    response = session.get(
        blob_url(server, digest), headers={"Range": f"bytes={start}-{stop - 1}"}, timeout=TIMEOUT
    )
    assert response.status_code == 206, response.text
    assert response.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{content.size}"
    assert response.content == content.slice(start, stop)


def rate(size: int, seconds: float) -> float:
    return size / MIB / seconds if seconds > 0 else float("inf")


@pytest.fixture
def big_server(tmp_path: Path) -> Iterator[RegistryServer]:
    """A server of its own, whose storage is deleted at the end: 2 GiB per run would fill the disk,
    since pytest keeps the temporary directories of the last few runs."""
    free = shutil.disk_usage(tmp_path).free
    if free < FREE_DISK_NEEDED:
        unavailable(f"needs {FREE_DISK_NEEDED // GIB} GiB free under {tmp_path}, has {free / GIB:.1f}")
    server = start_server(tmp_path / "server")
    try:
        yield server
    finally:
        server.stop()  # first: an open file keeps its blocks allocated after the unlink
        shutil.rmtree(server.root, ignore_errors=True)
    assert not server.root.exists(), f"could not remove {server.root}"


def test_2gib_blob_streams_in_and_out_in_bounded_memory(big_server: RegistryServer, report_figure) -> None:
    server = big_server
    session = server.session()
    content = Content(BLOB_SIZE)
    pristine = idle_rss(server)

    # One small round trip first, so that what every server does once (thread
    # pool, lazy imports, the remembered credentials) is part of the baseline:
    # only growth with the size of the blob is what this test is about.
    warmup = Content(3 * MIB + 5)
    warm_digest = push_streamed(session, server, warmup)
    assert pull_streamed(session, server, warm_digest, warmup.size) == warm_digest
    baseline = idle_rss(server)
    client_baseline = vm_rss("self")

    with RssSampler(server) as push_rss:
        started, cpu = time.monotonic(), cpu_seconds(server.process.pid)
        digest = push_streamed(session, server, content)
        push_seconds, push_cpu = time.monotonic() - started, cpu_seconds(server.process.pid) - cpu
    stored = next(server.root.rglob(f"blobs/sha256/*/{digest.removeprefix('sha256:')}/data"))
    assert stored.stat().st_size == BLOB_SIZE

    with RssSampler(server) as pull_rss:
        started, cpu = time.monotonic(), cpu_seconds(server.process.pid)
        pulled = pull_streamed(session, server, digest, BLOB_SIZE)
        pull_seconds, pull_cpu = time.monotonic() - started, cpu_seconds(server.process.pid) - cpu
    assert pulled == digest

    check_range(session, server, digest, content, BLOB_SIZE - BLOCK - 4099, BLOB_SIZE)
    check_range(session, server, digest, content, GIB - 10, GIB + 10)  # across a block boundary

    report_figure(
        f"2 GiB blob: server RSS pristine {pristine / MIB:.1f} MiB, "
        f"idle baseline {baseline / MIB:.1f} MiB, "
        f"peak during push {push_rss.server_peak / MIB:.1f} MiB "
        f"({(push_rss.server_peak - baseline) / MIB:+.1f}), "
        f"peak during pull {pull_rss.server_peak / MIB:.1f} MiB "
        f"({(pull_rss.server_peak - baseline) / MIB:+.1f}); "
        f"{push_rss.samples + pull_rss.samples} samples; "
        f"test process {client_baseline / MIB:.1f} MiB, "
        f"peak {max(push_rss.client_peak, pull_rss.client_peak) / MIB:.1f} MiB\n"
        f"2 GiB blob: push {push_seconds:.1f}s = {rate(BLOB_SIZE, push_seconds):.0f} MiB/s "
        f"(server CPU {push_cpu:.1f}s), "
        f"pull {pull_seconds:.1f}s = {rate(BLOB_SIZE, pull_seconds):.0f} MiB/s (server CPU {pull_cpu:.1f}s)"
    )
    assert push_rss.samples > 0
    assert pull_rss.samples > 0
    client_rise = max(push_rss.client_peak, pull_rss.client_peak) - client_baseline
    assert client_rise <= MAX_RSS_RISE, f"the test itself held {client_rise / MIB:.1f} MiB of the blob"
    for phase, peak in (("push", push_rss.server_peak), ("pull", pull_rss.server_peak)):
        for since, level in (("after a small warm-up", baseline), ("since start-up", pristine)):
            rise = peak - level
            assert rise <= MAX_RSS_RISE, (
                f"server RSS rose {rise / MIB:.1f} MiB {since} during the {phase} of a 2 GiB blob "
                f"(limit {MAX_RSS_RISE // MIB} MiB): something buffers the body"
            )
