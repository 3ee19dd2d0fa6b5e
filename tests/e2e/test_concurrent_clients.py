"""Thirteen clients at once against one server for 30 seconds: nothing fails, nothing is mixed up.

Three pushers push whole images (a config and layers of 100 KiB to a few
MiB, some layers shared between pushers, so the same blob is uploaded by
several clients at once) under a small pool of tags they overwrite in turn;
ten pullers resolve those tags while they move and fetch the manifest and
every blob, checking every digest. A pusher records a manifest in the ledger
before it sends it, so whatever a tag resolves to must be in the ledger:
a digest that is not means the server served something nobody pushed.
"""

import hashlib
import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from random import Random

import pytest
import requests

from tests.support.client import DOCKER_MANIFEST, image_manifest, sha256
from tests.support.server import RegistryServer, start_server

pytestmark = pytest.mark.e2e

KIB, MIB = 1 << 10, 1 << 20
PUSHERS, PULLERS = 3, 10
DURATION = 30.0
HARD_LIMIT = DURATION + 90.0  # past this a worker counts as hung and the test fails
MAX_ROUNDS = 100_000  # per worker: a bound on the loop even if the clock misbehaves
MAX_ERRORS_PER_WORKER = 5  # a broken server fails the test fast instead of flooding the report
NAME = "load/app"
TAGS = tuple(f"v{i}" for i in range(6))
SHARED_LAYERS = 4
LAYER_SIZES = (100 * KIB, 4 * MIB)
CHUNKED_ABOVE = MIB  # larger layers go up in two PATCHes with Content-Range, smaller ones monolithic
TIMEOUT = (5, 60)


@dataclass
class Ledger:
    """What the clients did, shared by all threads behind one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    manifests: dict[str, bytes] = field(default_factory=dict)  # digest -> bytes, recorded before PUT
    tagged: dict[str, set[str]] = field(default_factory=dict)  # tag -> every digest pushed under it
    errors: list[str] = field(default_factory=list)
    pushed_images: int = 0
    pushed_bytes: int = 0
    pulled_images: int = 0
    pulled_bytes: int = 0
    pull_seconds: list[float] = field(default_factory=list)

    def expect(self, tag: str, manifest: bytes) -> str:
        digest = sha256(manifest)
        with self.lock:
            self.manifests[digest] = manifest
            self.tagged.setdefault(tag, set()).add(digest)
        return digest

    def pushed(self, size: int) -> None:
        with self.lock:
            self.pushed_images += 1
            self.pushed_bytes += size

    def pulled(self, size: int, seconds: float) -> None:
        with self.lock:
            self.pulled_images += 1
            self.pulled_bytes += size
            self.pull_seconds.append(seconds)

    def known(self, tag: str, digest: str) -> bytes | None:
        with self.lock:
            return self.manifests.get(digest) if digest in self.tagged.get(tag, set()) else None

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def check(response: requests.Response, status: int, what: str) -> requests.Response:
    """Fail with what the server said: a bare status code would not say which request broke."""
    if response.status_code != status:
        raise AssertionError(f"{what}: {response.status_code} {response.text[:300]}")
    return response


def upload_blob(session: requests.Session, url: str, data: bytes) -> None:
    """Monolithic for small blobs; two PATCHes with Content-Range and an empty PUT for large ones."""
    digest = sha256(data)
    started = check(session.post(f"{url}/v2/{NAME}/blobs/uploads/", timeout=TIMEOUT), 202, "start upload")
    location = started.headers["Location"]
    if len(data) > CHUNKED_ABOVE:
        half = len(data) // 2
        for start, stop in ((0, half), (half, len(data))):
            patched = session.patch(
                location,
                data=data[start:stop],
                headers={"Content-Range": f"{start}-{stop - 1}", "Content-Type": "application/octet-stream"},
                timeout=TIMEOUT,
            )
            location = check(patched, 202, f"PATCH {start}-{stop - 1}").headers["Location"]
        done = session.put(location, params={"digest": digest}, timeout=TIMEOUT)
    else:
        done = session.put(location, params={"digest": digest}, data=data, timeout=TIMEOUT)
    check(done, 201, f"finish upload of {digest}")
    if done.headers["Docker-Content-Digest"] != digest:
        raise AssertionError(f"pushed {digest}, server says {done.headers['Docker-Content-Digest']}")


def push_image(session: requests.Session, url: str, rng: Random, shared: list[bytes], ledger: Ledger) -> None:
    """Config, one shared layer and two or three fresh ones, then the manifest under a pooled tag."""
    fresh = [os.urandom(rng.randint(*LAYER_SIZES)) for _ in range(rng.randint(2, 3))]
    layers = [rng.choice(shared), *fresh]
    rng.shuffle(layers)
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    for blob in (config, *layers):
        upload_blob(session, url, blob)
    manifest = image_manifest(config, layers)
    tag = rng.choice(TAGS)
    digest = ledger.expect(tag, manifest)
    response = session.put(
        f"{url}/v2/{NAME}/manifests/{tag}",
        data=manifest,
        headers={"Content-Type": DOCKER_MANIFEST},
        timeout=TIMEOUT,
    )
    check(response, 201, f"PUT manifest {tag}")
    if response.headers["Docker-Content-Digest"] != digest:
        raise AssertionError(f"manifest {digest} stored as {response.headers['Docker-Content-Digest']}")
    ledger.pushed(len(config) + sum(map(len, layers)) + len(manifest))


def fetch_blob(session: requests.Session, url: str, descriptor: dict[str, object]) -> int:
    """GET one blob and check its bytes against the descriptor; returns its size."""
    digest = str(descriptor["digest"])
    response = check(session.get(f"{url}/v2/{NAME}/blobs/{digest}", timeout=TIMEOUT), 200, f"GET {digest}")
    if sha256(response.content) != digest or len(response.content) != descriptor["size"]:
        raise AssertionError(f"blob {digest} came back as {sha256(response.content)}")
    return len(response.content)


def pull_image(session: requests.Session, url: str, rng: Random, ledger: Ledger) -> None:
    """Resolve a tag, check the manifest is one somebody pushed under it, then fetch every blob."""
    tag = rng.choice(TAGS)
    started = time.monotonic()
    response = session.get(
        f"{url}/v2/{NAME}/manifests/{tag}", headers={"Accept": DOCKER_MANIFEST}, timeout=TIMEOUT
    )
    check(response, 200, f"GET manifest {tag}")
    digest = response.headers["Docker-Content-Digest"]
    if sha256(response.content) != digest:
        raise AssertionError(f"manifest {tag} has digest {sha256(response.content)}, header says {digest}")
    if ledger.known(tag, digest) != response.content:
        raise AssertionError(f"tag {tag} resolved to {digest}, which no pusher pushed under it")
    document = json.loads(response.content)
    size = len(response.content)
    for descriptor in (document["config"], *document["layers"]):
        size += fetch_blob(session, url, descriptor)
    ledger.pulled(size, time.monotonic() - started)


def run_worker(name: str, step: Callable[[], None], deadline: float, ledger: Ledger) -> None:
    """Repeat `step` until the deadline; an exception is an error to report, not the end of the run."""
    errors = 0
    for _ in range(MAX_ROUNDS):
        if time.monotonic() >= deadline or errors >= MAX_ERRORS_PER_WORKER:
            return
        try:
            step()
        except Exception as error:
            errors += 1
            ledger.fail(f"{name}: {error!r}")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def digest_of_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            hasher.update(block)
    return "sha256:" + hasher.hexdigest()


@pytest.fixture
def load_server(tmp_path: Path) -> Iterator[RegistryServer]:
    """A server with auth for this test alone; its storage (about a GiB after a run) is removed after."""
    server = start_server(tmp_path / "server", workers=2)  # as deployed: one per core
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def test_pushers_and_pullers_at_once_see_no_errors(load_server: RegistryServer, report_figure) -> None:
    server, ledger = load_server, Ledger()
    seed = Random(1234)
    shared = [seed.randbytes(seed.randint(*LAYER_SIZES)) for _ in range(SHARED_LAYERS)]

    # Every tag exists before the clock starts, so a 404 from a puller is an error, never a race.
    setup = server.session()
    for layer in shared:
        upload_blob(setup, server.url, layer)
    for tag in TAGS:
        config = json.dumps({"tag": tag}).encode()
        upload_blob(setup, server.url, config)
        manifest = image_manifest(config, shared)
        ledger.expect(tag, manifest)
        put = setup.put(
            f"{server.url}/v2/{NAME}/manifests/{tag}",
            data=manifest,
            headers={"Content-Type": DOCKER_MANIFEST},
            timeout=TIMEOUT,
        )
        check(put, 201, f"seed {tag}")

    started = time.monotonic()
    deadline = started + DURATION

    def worker(name: str, step: Callable[[], None]) -> threading.Thread:
        # daemon: a hung worker must not keep pytest alive after the failure is reported
        return threading.Thread(
            target=run_worker, name=name, args=(name, step, deadline, ledger), daemon=True
        )

    workers = [
        worker(
            f"pusher{i}", partial(push_image, server.session(), server.url, Random(100 + i), shared, ledger)
        )
        for i in range(PUSHERS)
    ] + [
        worker(f"puller{i}", partial(pull_image, server.session(), server.url, Random(200 + i), ledger))
        for i in range(PULLERS)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=max(0.0, started + HARD_LIMIT - time.monotonic()))
    elapsed = time.monotonic() - started
    hung = [thread.name for thread in workers if thread.is_alive()]

    pulls = ledger.pull_seconds
    report_figure(
        f"{PUSHERS} pushers, {PULLERS} pullers, {elapsed:.1f}s: "
        f"pushed {ledger.pushed_images} images = {ledger.pushed_images / elapsed:.1f} images/s "
        f"({ledger.pushed_bytes / MIB / elapsed:.1f} MiB/s), "
        f"pulled {ledger.pulled_images} images = {ledger.pulled_images / elapsed:.1f} images/s "
        f"({ledger.pulled_bytes / MIB / elapsed:.1f} MiB/s), "
        f"pull p50 {1000 * (sorted(pulls)[len(pulls) // 2] if pulls else 0):.0f} ms, "
        f"p99 {1000 * (p99(pulls) if pulls else 0):.0f} ms, errors {len(ledger.errors)}"
    )
    assert not hung, f"workers still running after {HARD_LIMIT}s: {hung}"
    assert ledger.errors == [], "\n".join(ledger.errors[:20])
    assert ledger.pushed_images >= PUSHERS
    assert ledger.pulled_images >= PULLERS
    assert "Traceback" not in server.log()

    # Afterwards every manifest pushed is still there by digest, byte for byte,
    # and every blob on disk holds the bytes its name promises.
    check_session = server.session()
    for digest, manifest in ledger.manifests.items():
        response = check_session.get(
            f"{server.url}/v2/{NAME}/manifests/{digest}", headers={"Accept": DOCKER_MANIFEST}, timeout=TIMEOUT
        )
        assert check(response, 200, f"GET manifest {digest}").content == manifest
    blobs = list(server.root.glob("docker/registry/v2/blobs/sha256/*/*/data"))
    assert len(blobs) >= len(ledger.manifests)
    for path in blobs:
        assert digest_of_file(path) == "sha256:" + path.parent.name
    assert list(server.root.glob(f"docker/registry/v2/repositories/{NAME}/_uploads/*")) == []
