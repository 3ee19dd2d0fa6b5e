"""Uploads live in storage, not in a process: any server sharing the root can carry one on.

Behind a load balancer every request of an upload may reach another worker,
so two real server processes share one storage root here. A process keeps
the running sha256 of the uploads it served, keyed by the size it had hashed
up to; whatever the other process appended in between must make that cache
stale, or the digest of the finished blob would be wrong. Each plan below
bounces an upload between the two in a different order, so that each
server's cache is, at some step, missing or behind the bytes in storage.
"""

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.client import errors_of, sha256
from tests.support.server import RegistryServer

KIB, MIB = 1 << 10, 1 << 20
# Odd sizes, and one over the server's 1 MiB write block, so chunk edges fall mid-block.
CHUNK_SIZES = (700 * KIB + 3, MIB + 12_345, 64 * KIB - 1, 200 * KIB)
CONCURRENT_CLIENTS = 8
TIMEOUT = (5, 30)


@dataclass(frozen=True)
class Pair:
    """Two server processes on one storage root."""

    a: RegistryServer
    b: RegistryServer
    root: Path

    def __getitem__(self, which: str) -> RegistryServer:
        return {"A": self.a, "B": self.b}[which]

    def other(self, which: str) -> RegistryServer:
        return self["B" if which == "A" else "A"]


@pytest.fixture
def pair(start_registry: Callable[..., RegistryServer], tmp_path: Path) -> Pair:
    root = tmp_path / "shared"
    return Pair(start_registry(root=root), start_registry(root=root), root)


def chunk_data(index: int) -> bytes:
    """Distinct, reproducible bytes per chunk, so a chunk hashed twice or skipped shows in the digest."""
    return hashlib.shake_256(f"chunk {index}".encode()).digest(CHUNK_SIZES[index % len(CHUNK_SIZES)])


def upload_url(server: RegistryServer, name: str, upload_id: str) -> str:
    return f"{server.url}/v2/{name}/blobs/uploads/{upload_id}"


def start_upload(session: requests.Session, server: RegistryServer, name: str) -> str:
    response = session.post(f"{server.url}/v2/{name}/blobs/uploads/", timeout=TIMEOUT)
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith(server.url)
    return response.headers["Docker-Upload-UUID"]


def patch_chunk(
    session: requests.Session,
    server: RegistryServer,
    name: str,
    upload_id: str,
    data: bytes,
    offset: int | None,
) -> requests.Response:
    """PATCH one chunk; with `offset`, as `Content-Range` names it, else streamed as `docker push` does."""
    headers = {"Content-Type": "application/octet-stream"}
    if offset is not None:
        headers["Content-Range"] = f"{offset}-{offset + len(data) - 1}"
    return session.patch(upload_url(server, name, upload_id), data=data, headers=headers, timeout=TIMEOUT)


def reported_range(session: requests.Session, server: RegistryServer, name: str, upload_id: str) -> str:
    """The `Range` a server reports for an upload on `GET`: `0-<last byte stored>`."""
    response = session.get(upload_url(server, name, upload_id), timeout=TIMEOUT)
    assert response.status_code == 204, response.text
    return response.headers["Range"]


def assert_blob_on_both(session: requests.Session, pair: Pair, name: str, data: bytes) -> None:
    """Either process serves the finished blob, byte for byte, and neither knows the upload any more."""
    digest = sha256(data)
    for server in (pair.a, pair.b):
        response = session.get(f"{server.url}/v2/{name}/blobs/{digest}", timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        assert response.headers["Docker-Content-Digest"] == digest
        assert response.content == data
    uploads = pair.root / "docker/registry/v2/repositories" / name / "_uploads"
    assert list(uploads.glob("*")) == []


# Each plan: the server that starts the upload, then (server, step) pairs.
# "patch" sends the next chunk, "put" finishes without a body, "put+chunk" with the last chunk.
PLANS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    # B has no running hash at all; A's is behind when it patches; B's is behind at the end.
    "start-A_patch-B_patch-A_put-B": ("A", [("B", "patch"), ("A", "patch"), ("B", "put+chunk")]),
    # A hashed chunk 0 itself, so its cache is real but stale once B appended: used, chunk 1 is lost.
    "A-caches-then-goes-stale": ("A", [("A", "patch"), ("B", "patch"), ("A", "patch"), ("A", "put")]),
    # A's only cache is the empty hash from POST; B wrote everything.
    "A-finishes-what-B-wrote": ("A", [("B", "patch"), ("B", "patch"), ("A", "put")]),
}


@pytest.mark.parametrize("with_range", [True, False], ids=["content-range", "streamed"])
@pytest.mark.parametrize("plan", list(PLANS), ids=list(PLANS))
def test_an_upload_moves_between_processes(pair: Pair, repo: str, plan: str, with_range: bool) -> None:
    first, steps = PLANS[plan]
    session = pair.a.session()
    upload_id = start_upload(session, pair[first], repo)
    sent = b""
    for which, step in steps:
        server = pair[which]
        if step == "patch":
            chunk = chunk_data(len(sent))
            response = patch_chunk(session, server, repo, upload_id, chunk, len(sent) if with_range else None)
            assert response.status_code == 202, response.text
            sent += chunk
            assert response.headers["Range"] == f"0-{len(sent) - 1}"
            assert response.headers["Location"] == upload_url(server, repo, upload_id)
            # The other process sees the same upload, because it is the same files.
            assert reported_range(session, pair.other(which), repo, upload_id) == f"0-{len(sent) - 1}"
        else:
            body = chunk_data(len(sent)) if step == "put+chunk" else b""
            sent += body
            response = session.put(
                upload_url(server, repo, upload_id),
                params={"digest": sha256(sent)},
                data=body,
                timeout=TIMEOUT,
            )
            assert response.status_code == 201, response.text
            assert response.headers["Docker-Content-Digest"] == sha256(sent)
    assert_blob_on_both(session, pair, repo, sent)
    for server in (pair.a, pair.b):
        gone = session.get(upload_url(server, repo, upload_id), timeout=TIMEOUT)
        assert gone.status_code == 404
        assert errors_of(gone) == ["BLOB_UPLOAD_UNKNOWN"]


def test_a_chunk_at_an_offset_only_one_process_believes_in_is_refused(pair: Pair, repo: str) -> None:
    """After B appended, a client still at A's idea of the end gets 416 and the true end, then resumes."""
    session = pair.a.session()
    upload_id = start_upload(session, pair.a, repo)
    first, second, third = chunk_data(0), chunk_data(1), chunk_data(2)
    assert patch_chunk(session, pair.a, repo, upload_id, first, 0).status_code == 202
    assert patch_chunk(session, pair.b, repo, upload_id, second, len(first)).status_code == 202

    stale = patch_chunk(session, pair.a, repo, upload_id, third, len(first))
    assert stale.status_code == 416, stale.text
    assert stale.headers["Range"] == f"0-{len(first) + len(second) - 1}"
    assert reported_range(session, pair.b, repo, upload_id) == stale.headers["Range"]

    resumed = patch_chunk(session, pair.a, repo, upload_id, third, len(first) + len(second))
    assert resumed.status_code == 202, resumed.text
    data = first + second + third
    done = session.put(upload_url(pair.b, repo, upload_id), params={"digest": sha256(data)}, timeout=TIMEOUT)
    assert done.status_code == 201, done.text
    assert_blob_on_both(session, pair, repo, data)


def upload_in_two_halves(
    session: requests.Session, server: RegistryServer, name: str, data: bytes, barrier: threading.Barrier
) -> requests.Response:
    """POST, PATCH the first half, wait for everyone, PUT the second half: the commits then overlap."""
    upload_id = start_upload(session, server, name)
    half = len(data) // 2
    patched = patch_chunk(session, server, name, upload_id, data[:half], 0)
    assert patched.status_code == 202, patched.text
    barrier.wait()
    return session.put(
        upload_url(server, name, upload_id),
        params={"digest": sha256(data)},
        data=data[half:],
        timeout=TIMEOUT,
    )


def upload_monolithic(
    session: requests.Session, server: RegistryServer, name: str, data: bytes, barrier: threading.Barrier
) -> requests.Response:
    """One `POST ?digest=` with the whole body, sent when everyone is ready."""
    barrier.wait()
    return session.post(
        f"{server.url}/v2/{name}/blobs/uploads/", params={"digest": sha256(data)}, data=data, timeout=TIMEOUT
    )


def test_concurrent_uploads_of_the_same_blob_all_succeed(pair: Pair, repo: str) -> None:
    """Layers shared between images are pushed by many clients at once; each must get its 201.

    Clients alternate between the two processes and between chunked and
    monolithic uploads, and all finish together, so several renames onto the
    same blob and writes of the same link race.
    """
    data = hashlib.shake_256(b"shared layer").digest(3 * MIB + 17)
    barrier = threading.Barrier(CONCURRENT_CLIENTS, timeout=30)
    sessions = [pair.a.session() for _ in range(CONCURRENT_CLIENTS)]

    def client(index: int) -> requests.Response:
        upload = upload_in_two_halves if index % 2 == 0 else upload_monolithic
        return upload(sessions[index], pair["AB"[(index // 2) % 2]], repo, data, barrier)

    with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
        responses = list(pool.map(client, range(CONCURRENT_CLIENTS), timeout=60))
    assert [r.status_code for r in responses] == [201] * CONCURRENT_CLIENTS, [r.text for r in responses]
    assert {r.headers["Docker-Content-Digest"] for r in responses} == {sha256(data)}
    assert_blob_on_both(sessions[0], pair, repo, data)
    stored = pair.root / "docker/registry/v2/blobs/sha256" / sha256(data)[7:9] / sha256(data)[7:] / "data"
    assert stored.read_bytes() == data


def test_several_worker_processes_share_the_port_and_the_uploads(start_registry) -> None:
    """`serve --workers 3`: connections land on different workers, and a chunked upload whose
    requests each use a new connection still comes out whole."""
    server = start_registry(workers=3)
    data = os.urandom(3 * 200_000)
    location = None
    for offset in range(0, len(data), 200_000):
        session = server.session()  # a new connection each time: likely another worker
        if location is None:
            location = session.post(f"{server.url}/v2/workers/blobs/uploads/").headers["Location"]
        response = session.patch(
            location,
            data=data[offset : offset + 200_000],
            headers={"Content-Range": f"{offset}-{offset + 199_999}"},
        )
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        session.close()
    assert location is not None
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert server.session().put(location, params={"digest": digest}).status_code == 201
    assert server.session().get(f"{server.url}/v2/workers/blobs/{digest}").content == data
    workers = [p for p in Path("/proc").glob("[0-9]*") if _parent_of(p) == server.process.pid]
    assert len(workers) == 3
    assert "started 3 worker processes" in server.log()


def _parent_of(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
