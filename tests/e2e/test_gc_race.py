"""Garbage collections in a loop while 3 clients push and 10 pull for a minute: nothing breaks.

Collections run back to back, both ways at once: `cargobay gc`
subprocesses on the same storage (another process, which only the flock of
the collection lock keeps out of the server's way) and `POST /admin/gc`
inside the server. Every third collection of each loop runs with
`--delete-untagged`. The grace is three seconds: small enough that garbage
ripens all the time, and above the longest push of a loaded two-core
machine (about two seconds), since a claim lasts the grace and a push that
takes longer may lose its layers legitimately (the failure message says so
if it happens).

Each pusher is a CI build server with a repository of its own. It pushes
scratch images (some of them multi-architecture indexes whose children go
up by digest first, as clients push them), pulls each one back before it
deletes it by digest, so garbage appears all the time, and builds its next
images from the freed layers that have just become garbage (last pushed
longer than the grace ago). A collection has likely marked such a layer and
not swept it yet when the pusher's HEAD finds it and skips the upload: the
HEAD-then-push-manifest race that corrupted registry:2 images. Or the layer
is gone already, and the pusher must really upload it again. A pause of up
to `MAX_PAUSE` between the HEADs and the manifest, as while a client
uploads its other layers, makes a sweep inside that window likelier. Every
third round a pusher publishes a stable image to `race/stable`, made of such
layers (mounted from its repository while they are still there), under a
new build tag, and moves one of its stable tags to it. Pullers resolve the
stable tags while they move, fetch the manifest, its children and every
blob, and check every digest against what the pushers recorded before
pushing.

Why `--delete-untagged` may run during the load: a puller that resolved a
stable tag just before it moved could otherwise legitimately find the old
manifest collected (untagged, older than the grace): a correct answer, not
a bug, and a test that excused it could not tell it from a real loss. So
every stable manifest keeps its build tag forever, as CI keeps `build-N`
tags, and nothing a puller can resolve ever becomes untagged: for pullers
any error is a failure. Pushers reference untagged content (index
children) only within the push that created it, well inside the grace.

After the load, a default collection with no grace must leave exactly what
tags and untagged manifests reach, and a `--delete-untagged` one exactly
what tags reach, both computed here from what the test pushed and deleted
and compared with the blob files and manifest revisions on disk.

What this test cannot see: the few microseconds between the collector's
last look at a blob and its deletion, where only the cross-process flock
keeps a server's claim out; `tests/storage/test_drivers.py` checks that the
lock holds across processes.
"""

import asyncio
import contextlib
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

import pytest
import requests

from cargobay.registry.gc import collect_garbage
from cargobay.storage.filesystem import FilesystemDriver
from cargobay.storage.locks import FileReadWriteLock
from tests.e2e.test_concurrent_clients import check, digest_of_file, p99
from tests.http.test_gc import stored_blobs, stored_manifests
from tests.support.client import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    image_manifest,
    push_image,
    sha256,
)
from tests.support.server import USER, RegistryServer, start_server

pytestmark = pytest.mark.e2e

KIB = 1 << 10
PUSHERS, PULLERS = 3, 10
DURATION = 60.0
HARD_LIMIT = DURATION + 60.0  # past this a worker counts as hung and the test fails
GRACE, GRACE_SECONDS = "3s", 3.0
MAX_ROUNDS = 100_000  # per worker: a bound on the loop even if the clock misbehaves
MAX_COLLECTIONS = 2_000  # per collector loop, likewise
MAX_ERRORS_PER_WORKER = 5  # a broken server fails the test fast instead of flooding the report
UNTAGGED_EVERY = 3  # every third collection of a loop runs with --delete-untagged
ADMIN_PAUSE = 0.1  # between in-server collections, so the server spends some time serving
COLLECTION_TIMEOUT = 60.0
STABLE = "race/stable"
SLOTS = 3  # stable tags per pusher, all pushed before the clock starts
LIVE_SCRATCH = 3  # scratch images a pusher keeps before it deletes the oldest
COMMON_LAYERS = 4  # shared by every pusher, so several clients upload the same blob at once
MAX_FREE_LAYERS = 32  # freed layers a pusher remembers for reuse
FORGET_AFTER = GRACE_SECONDS + 10.0  # a layer unused this long is surely collected: forget it
RIPE_FIRST = 0.8  # how often a pusher reuses the layer that became collectable last
MAX_PAUSE = 0.3  # between HEADs and the manifest: well inside the grace
LAYER_SIZES = (1 * KIB, 48 * KIB)
TIMEOUT = (5, 60)
ACCEPT = ", ".join((DOCKER_MANIFEST, OCI_MANIFEST, OCI_INDEX))
REPOSITORIES = "docker/registry/v2/repositories"


@dataclass(frozen=True)
class Image:
    """A manifest as the test pushed it, with what it references: the test's own model of storage."""

    repo: str
    payload: bytes
    media_type: str
    blobs: tuple[str, ...] = ()  # config and layers
    children: tuple[str, ...] = ()  # manifests of an index, in the same repository

    @property
    def digest(self) -> str:
        return sha256(self.payload)

    @property
    def key(self) -> tuple[str, str]:
        return self.repo, self.digest


@dataclass(eq=False)
class Layer:
    data: bytes
    users: int = 0  # live scratch images (or children) that list it
    touched: float = 0.0  # monotonic time of the last push that refreshed it; 0 if never pushed


@dataclass(frozen=True)
class Collection:
    how: str  # "cli" or "admin"
    untagged: bool
    seconds: float
    manifests: int
    blobs: int


@dataclass
class Ledger:
    """What clients and collectors did, shared by all threads behind one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    images: dict[tuple[str, str], Image] = field(default_factory=dict)  # recorded before the PUT
    history: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (repo, tag) -> every digest
    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> digest now
    orphans: set[tuple[str, str]] = field(default_factory=set)  # children of deleted indexes: untagged
    errors: list[str] = field(default_factory=list)
    collections: list[Collection] = field(default_factory=list)
    pushes: int = 0  # images (or indexes) pushed under a tag
    deletes: int = 0
    claimed: int = 0  # freed layers a HEAD or mount found, so their upload was skipped
    reuploaded: int = 0  # freed layers that were collected already and went up again
    push_seconds: list[float] = field(default_factory=list)  # first request of a push to its last tag
    pull_seconds: list[float] = field(default_factory=list)

    def expect(self, image: Image, tag: str | None) -> None:
        with self.lock:
            self.images[image.key] = image
            if tag is not None:
                self.history.setdefault((image.repo, tag), set()).add(image.digest)

    def tagged(self, image: Image, tag: str) -> None:
        with self.lock:
            self.tags[(image.repo, tag)] = image.digest

    def pushed(self, seconds: float) -> None:
        with self.lock:
            self.pushes += 1
            self.push_seconds.append(seconds)

    def deleted(self, image: Image) -> None:
        with self.lock:
            for key in [key for key, digest in self.tags.items() if (key[0], digest) == image.key]:
                del self.tags[key]
            self.orphans.update((image.repo, child) for child in image.children)
            self.deletes += 1

    def image(self, repo: str, digest: str) -> Image | None:
        with self.lock:
            return self.images.get((repo, digest))

    def pushed_under(self, repo: str, tag: str, digest: str) -> bool:
        with self.lock:
            return digest in self.history.get((repo, tag), set())

    def reused(self, claimed: int, reuploaded: int) -> None:
        with self.lock:
            self.claimed += claimed
            self.reuploaded += reuploaded

    def pulled(self, seconds: float) -> None:
        with self.lock:
            self.pull_seconds.append(seconds)

    def collected(self, collection: Collection) -> None:
        with self.lock:
            self.collections.append(collection)

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def blob_unknown(self) -> list[str]:
        with self.lock:
            return [e for e in self.errors if "BLOB_UNKNOWN" in e]  # also MANIFEST_BLOB_UNKNOWN


def pull(session: requests.Session, url: str, ledger: Ledger, repo: str, reference: str) -> Image:
    """Fetch a manifest, its children and every blob, checking each against what was pushed.

    By tag, the manifest must be one some pusher recorded under that tag; by
    digest, it must be byte for byte the one recorded.
    """
    response = check(
        session.get(f"{url}/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT}, timeout=TIMEOUT),
        200,
        f"GET {repo}:{reference}",
    )
    digest = response.headers["Docker-Content-Digest"]
    if sha256(response.content) != digest:
        raise AssertionError(f"{repo}:{reference} has digest {sha256(response.content)}, header {digest}")
    if reference.startswith("sha256:") and digest != reference:
        raise AssertionError(f"{repo}@{reference} answered {digest}")
    if not reference.startswith("sha256:") and not ledger.pushed_under(repo, reference, digest):
        raise AssertionError(f"{repo}:{reference} resolved to {digest}, which nobody pushed under it")
    image = ledger.image(repo, digest)
    if image is None or image.payload != response.content:
        raise AssertionError(f"{repo}:{reference} answered {digest}, which is not what was pushed")
    for child in image.children:
        pull(session, url, ledger, repo, child)
    for blob in image.blobs:
        got = check(session.get(f"{url}/v2/{repo}/blobs/{blob}", timeout=TIMEOUT), 200, f"GET {repo}@{blob}")
        if sha256(got.content) != blob:
            raise AssertionError(f"blob {blob} of {repo} came back as {sha256(got.content)}")
    return image


class Pusher:
    """One CI build server: scratch images in its own repository, deleted again after a while, and
    now and then a stable image, made of the layers it freed as soon as they are garbage."""

    def __init__(
        self, number: int, server: RegistryServer, ledger: Ledger, common: list[bytes], seed: int
    ) -> None:
        self.number = number
        self.repo = f"race/p{number}"
        self.session = server.session()
        self.url = server.url
        self.ledger = ledger
        self.common = common
        self.rng = Random(seed)
        self.free: list[Layer] = []  # layers no live image of this pusher lists
        self.live: deque[tuple[Image, list[Layer]]] = deque()
        self.rounds = 0
        self.builds = 0

    def step(self) -> None:
        self.rounds += 1
        began = time.monotonic()
        self.live.append(self.push_scratch())
        self.ledger.pushed(time.monotonic() - began)
        if len(self.live) > LIVE_SCRATCH:
            self.retire(*self.live.popleft())
        if self.rounds % 3 == 0:
            self.publish(f"s{self.number}-{self.rng.randrange(SLOTS)}")

    def take(self, count: int) -> list[Layer]:
        """Freed layers that are garbage by now (last pushed longer than the grace ago), mostly the
        one that became so last: a running collection has likely marked it and not swept it yet.
        Fresh layers when none is ripe."""
        taken: list[Layer] = []
        for _ in range(count):
            now = time.monotonic()
            ripe = [layer for layer in self.free if now - layer.touched >= GRACE_SECONDS]
            if not ripe:
                taken.append(Layer(self.rng.randbytes(self.rng.randint(*LAYER_SIZES))))
                continue
            pick = max(ripe, key=lambda layer: layer.touched)
            if self.rng.random() > RIPE_FIRST:
                pick = self.rng.choice(ripe)  # older, likely collected already: it must go up again
            self.free.remove(pick)
            taken.append(pick)
        for layer in taken:
            layer.users += 1
        return taken

    def release(self, layers: Iterable[Layer]) -> None:
        for layer in layers:
            layer.users -= 1
            if layer.users == 0:
                self.free.append(layer)
        now = time.monotonic()
        self.free = [layer for layer in self.free if now - layer.touched < FORGET_AFTER]
        self.free.sort(key=lambda layer: layer.touched)
        del self.free[:-MAX_FREE_LAYERS]

    def push_scratch(self) -> tuple[Image, list[Layer]]:
        tag = f"scratch-{self.rounds}"
        if self.rng.random() < 0.3:
            parts = [self.take(1) for _ in range(2)]
            children = [self.push_image(self.repo, [self.rng.choice(self.common), *p], []) for p in parts]
            return self.push_index(self.repo, children, [tag]), [layer for p in parts for layer in p]
        layers = self.take(2)
        extra = [self.rng.choice(self.common)] + ([os.urandom(512)] if self.rng.random() < 0.3 else [])
        return self.push_image(self.repo, [*extra, *layers], [tag]), layers

    def retire(self, image: Image, layers: list[Layer]) -> None:
        """Pull the image once more, then delete it by digest: its layers become garbage."""
        pull(self.session, self.url, self.ledger, self.repo, image.digest)
        response = self.session.delete(f"{self.url}/v2/{self.repo}/manifests/{image.digest}", timeout=TIMEOUT)
        check(response, 202, f"DELETE {self.repo}@{image.digest}")
        self.ledger.deleted(image)
        self.release(layers)

    def publish(self, slot: str) -> None:
        """A stable image under a build tag kept forever, then a stable tag moved to it. Its freed
        layers are anchored for good, so they leave the pool."""
        self.builds += 1
        began = time.monotonic()
        tags = [f"b{self.number}-{self.builds}", slot]
        if self.rng.random() < 0.25:
            children = [self.push_image(STABLE, self.take(1), [], mount=True) for _ in range(2)]
            self.push_index(STABLE, children, tags)
        else:
            self.push_image(STABLE, self.take(2), tags, mount=True)
        self.ledger.pushed(time.monotonic() - began)

    def push_image(
        self, repo: str, layers: Sequence[Layer | bytes], tags: list[str], *, mount: bool = False
    ) -> Image:
        """Config and layers (HEAD first, then a mount or an upload), then the manifest: by digest
        when `tags` is empty, else under each tag in turn."""
        config = json.dumps({"os": "linux", "pusher": self.number, "nonce": os.urandom(8).hex()}).encode()
        claimed = reuploaded = 0
        for layer in [config, *layers]:
            data = layer.data if isinstance(layer, Layer) else layer
            found = self.ensure_blob(repo, data, mount)
            if isinstance(layer, Layer) and layer.touched:
                claimed, reuploaded = claimed + found, reuploaded + (not found)
        if claimed:
            time.sleep(self.rng.uniform(0, MAX_PAUSE))  # as if other layers were going up meanwhile
        oci = self.rng.random() < 0.5
        blobs = [layer.data if isinstance(layer, Layer) else layer for layer in layers]
        payload = image_manifest(config, blobs, oci=oci)
        image = Image(
            repo, payload, OCI_MANIFEST if oci else DOCKER_MANIFEST, (sha256(config), *map(sha256, blobs))
        )
        self.put_manifest(image, tags)
        for layer in layers:
            if isinstance(layer, Layer):
                layer.touched = time.monotonic()
        self.ledger.reused(claimed, reuploaded)
        return image

    def push_index(self, repo: str, children: list[Image], tags: list[str]) -> Image:
        payload = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    descriptor(
                        child.media_type, child.payload, platform={"os": "linux", "architecture": arch}
                    )
                    for child, arch in zip(children, ("amd64", "arm64"), strict=False)
                ],
            }
        ).encode()
        image = Image(repo, payload, OCI_INDEX, children=tuple(child.digest for child in children))
        self.put_manifest(image, tags)
        return image

    def ensure_blob(self, repo: str, data: bytes, mount: bool) -> bool:
        """Make the blob present in `repo` as clients do; True when it was there (HEAD or mount) and
        so was not uploaded."""
        digest = sha256(data)
        head = self.session.head(f"{self.url}/v2/{repo}/blobs/{digest}", timeout=TIMEOUT)
        if head.status_code == 200:
            return True
        check(head, 404, f"HEAD {repo}@{digest}")
        params = {"mount": digest, "from": self.repo} if mount else {}
        started = self.session.post(f"{self.url}/v2/{repo}/blobs/uploads/", params=params, timeout=TIMEOUT)
        if mount and started.status_code == 201:
            return True
        location = check(started, 202, f"start upload to {repo}").headers["Location"]
        done = self.session.put(location, params={"digest": digest}, data=data, timeout=TIMEOUT)
        if check(done, 201, f"upload {repo}@{digest}").headers["Docker-Content-Digest"] != digest:
            raise AssertionError(f"uploaded {digest}, server says {done.headers['Docker-Content-Digest']}")
        return False

    def put_manifest(self, image: Image, tags: list[str]) -> None:
        for reference in tags or [image.digest]:
            tag = None if reference == image.digest else reference
            self.ledger.expect(image, tag)
            response = self.session.put(
                f"{self.url}/v2/{image.repo}/manifests/{reference}",
                data=image.payload,
                headers={"Content-Type": image.media_type},
                timeout=TIMEOUT,
            )
            check(response, 201, f"PUT {image.repo}:{reference}")
            if response.headers["Docker-Content-Digest"] != image.digest:
                raise AssertionError(f"{image.digest} stored as {response.headers['Docker-Content-Digest']}")
            if tag is not None:
                self.ledger.tagged(image, tag)


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


def gc_command(server: RegistryServer, *args: str) -> list[str]:
    return [sys.executable, "-m", "cargobay", "gc", "--config", str(server.config_path), *args]


def gc_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


def cli_collection(server: RegistryServer, untagged: bool, grace: str = GRACE) -> Collection:
    """One `cargobay gc` in a process of its own: it shares nothing with the server but the storage
    and the flock of the collection lock."""
    args = ["--grace", grace, *(["--delete-untagged"] if untagged else [])]
    started = time.monotonic()
    result = subprocess.run(
        gc_command(server, *args),
        capture_output=True,
        text=True,
        timeout=COLLECTION_TIMEOUT,
        env=gc_environment(),
    )
    if result.returncode != 0:
        raise AssertionError(
            f"cargobay gc {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}"
        )
    lines = result.stdout.splitlines()
    return Collection(
        "cli",
        untagged,
        time.monotonic() - started,
        sum(line.startswith("removed manifest ") for line in lines),
        sum(line.startswith("removed blob ") for line in lines),
    )


def admin_collection(
    session: requests.Session, server: RegistryServer, untagged: bool, grace: str = GRACE
) -> Collection:
    """One collection inside the server, through its authenticated admin endpoint."""
    params = {"grace": grace, "deleteuntagged": "true" if untagged else "false"}
    started = time.monotonic()
    response = session.post(f"{server.url}/admin/gc", params=params, timeout=(5, COLLECTION_TIMEOUT))
    report = check(response, 200, f"POST /admin/gc {params}").json()
    return Collection(
        "admin", untagged, time.monotonic() - started, len(report["manifests"]), len(report["blobs"])
    )


def collect_in_a_loop(
    name: str, collect: Callable[[bool], Collection], deadline: float, ledger: Ledger, pause: float
) -> None:
    """Collections back to back until the deadline, every `UNTAGGED_EVERY`th with --delete-untagged."""
    errors = 0
    for round_ in range(MAX_COLLECTIONS):
        if time.monotonic() >= deadline or errors >= MAX_ERRORS_PER_WORKER:
            return
        try:
            ledger.collected(collect(round_ % UNTAGGED_EVERY == UNTAGGED_EVERY - 1))
        except Exception as error:
            errors += 1
            ledger.fail(f"{name}: {error!r}")
        time.sleep(pause)


def reachable(ledger: Ledger, roots: Iterable[tuple[str, str]]) -> tuple[set[tuple[str, str]], set[str]]:
    """The manifests (repository, digest) and blobs `roots` reach, from the test's own records."""
    manifests: set[tuple[str, str]] = set()
    blobs: set[str] = set()
    pending = list(roots)
    while pending:
        key = pending.pop()
        if key in manifests:
            continue
        manifests.add(key)
        image = ledger.images[key]
        blobs |= {image.digest, *image.blobs}
        pending.extend((image.repo, child) for child in image.children)
    return manifests, blobs


def summary(ledger: Ledger, elapsed: float) -> str:
    pulls, pushes = ledger.pull_seconds, ledger.push_seconds
    lines = [
        f"{PUSHERS} pushers, {PULLERS} pullers, {elapsed:.1f}s, grace {GRACE}:",
        f"  pushed {ledger.pushes} images = {ledger.pushes / elapsed:.1f} pushes/s, "
        f"p99 {p99(pushes) if pushes else 0:.2f}s, longest {max(pushes, default=0):.2f}s "
        f"(a claim must last that long: grace {GRACE}); deleted {ledger.deletes} by digest",
        f"  pulled {len(pulls)} images = {len(pulls) / elapsed:.1f} pulls/s, "
        f"p50 {1000 * (sorted(pulls)[len(pulls) // 2] if pulls else 0):.0f} ms, "
        f"p99 {1000 * (p99(pulls) if pulls else 0):.0f} ms",
        f"  freed layers reused: {ledger.claimed} found by HEAD/mount (upload skipped), "
        f"{ledger.reuploaded} collected already and uploaded again",
    ]
    for how in ("cli", "admin"):
        for untagged in (False, True):
            runs = [c for c in ledger.collections if c.how == how and c.untagged == untagged]
            seconds = sorted(c.seconds for c in runs)
            lines.append(
                f"  {how:5} collections{' --delete-untagged' if untagged else ''}: {len(runs)}, "
                f"removed {sum(c.manifests for c in runs)} manifests and {sum(c.blobs for c in runs)} blobs, "
                f"median {seconds[len(seconds) // 2] if seconds else 0:.2f}s, "
                f"max {max(seconds, default=0):.2f}s"
            )
    lines.append(f"  errors {len(ledger.errors)}, blob unknown {len(ledger.blob_unknown())}")
    return "\n".join(lines)


def failures(messages: list[str], ledger: Ledger) -> str:
    """The first failures, and whether the machine was too slow for the test's premise: a claim
    lasts the grace, so a push that takes longer may lose its layers legitimately."""
    longest = max(ledger.push_seconds, default=0.0)
    slow = f"\n(a push took {longest:.1f}s, longer than the {GRACE} grace)" if longest > GRACE_SECONDS else ""
    return "\n".join(messages[:20]) + slow


@pytest.fixture
def race_server(tmp_path: Path) -> Iterator[RegistryServer]:
    server = start_server(
        tmp_path / "server", workers=2, overrides={"cargobay.admins": [USER]}
    )  # 2: one per core
    try:
        yield server
    finally:
        server.stop()


def test_collections_in_a_loop_while_clients_push_and_pull(
    race_server: RegistryServer, report_figure
) -> None:
    server, ledger = race_server, Ledger()
    seed = Random(4242)
    common = [seed.randbytes(seed.randint(*LAYER_SIZES)) for _ in range(COMMON_LAYERS)]
    pushers = [Pusher(i, server, ledger, common, 300 + i) for i in range(PUSHERS)]
    # Every stable tag exists before the clock starts, so a puller's 404 is an error, never a race.
    for pusher in pushers:
        for slot in range(SLOTS):
            pusher.publish(f"s{pusher.number}-{slot}")
    stable_tags = sorted(tag for repo, tag in ledger.tags if repo == STABLE and tag.startswith("s"))

    started = time.monotonic()
    deadline = started + DURATION

    def worker(name: str, target: Callable[..., None], *args: object) -> threading.Thread:
        # daemon: a hung worker must not keep pytest alive after the failure is reported
        return threading.Thread(target=target, name=name, args=(name, *args), daemon=True)

    def puller(session: requests.Session, rng: Random) -> Callable[[], None]:
        def step() -> None:
            began = time.monotonic()
            pull(session, server.url, ledger, STABLE, rng.choice(stable_tags))
            ledger.pulled(time.monotonic() - began)

        return step

    admin = server.session()
    threads = (
        [worker(f"pusher{p.number}", run_worker, p.step, deadline, ledger) for p in pushers]
        + [
            worker(f"puller{i}", run_worker, puller(server.session(), Random(500 + i)), deadline, ledger)
            for i in range(PULLERS)
        ]
        + [
            worker("cli-gc", collect_in_a_loop, lambda u: cli_collection(server, u), deadline, ledger, 0.0),
            worker(
                "admin-gc",
                collect_in_a_loop,
                lambda u: admin_collection(admin, server, u),
                deadline,
                ledger,
                ADMIN_PAUSE,
            ),
        ]
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, started + HARD_LIMIT - time.monotonic()))
    elapsed = time.monotonic() - started
    hung = [thread.name for thread in threads if thread.is_alive()]
    report_figure(summary(ledger, elapsed))

    assert not hung, f"workers still running after {HARD_LIMIT}s: {hung}"
    assert ledger.blob_unknown() == [], failures(ledger.blob_unknown(), ledger)
    assert ledger.errors == [], failures(ledger.errors, ledger)
    assert len(ledger.pull_seconds) >= PULLERS
    assert ledger.deletes >= PUSHERS
    assert {c.how for c in ledger.collections if c.untagged} == {"cli", "admin"}
    assert {c.how for c in ledger.collections if not c.untagged} == {"cli", "admin"}
    assert sum(c.blobs for c in ledger.collections) > 0, "the collections never had garbage to race with"
    assert ledger.claimed > 0, "no push ever reused a freed layer that was still there"
    assert ledger.reuploaded > 0, "no push ever found a freed layer collected"

    # Without --delete-untagged: what tags reach, plus whichever orphaned index children the
    # --delete-untagged collections of the load had not taken yet, and every blob those reach.
    tagged, tagged_blobs = reachable(ledger, [(repo, digest) for (repo, _), digest in ledger.tags.items()])
    cli_collection(server, untagged=False, grace="0")
    revisions = stored_manifests(server)
    assert tagged <= revisions, f"tagged manifests lost: {sorted(tagged - revisions)[:10]}"
    assert revisions - tagged <= ledger.orphans, f"kept unreachable: {sorted(revisions - tagged)[:10]}"
    _, expected_blobs = reachable(ledger, revisions)
    blobs = stored_blobs(server)
    assert blobs == expected_blobs, (
        f"missing {sorted(expected_blobs - blobs)[:10]}, unreachable {sorted(blobs - expected_blobs)[:10]}"
    )

    # With --delete-untagged, exactly what the tags reach.
    admin_collection(admin, server, untagged=True, grace="0")
    assert stored_manifests(server) == tagged
    blobs = stored_blobs(server)
    assert blobs == tagged_blobs, (
        f"missing {sorted(tagged_blobs - blobs)[:10]}, unreachable {sorted(blobs - tagged_blobs)[:10]}"
    )

    # Everything tagged pulls whole, every blob file holds what its name says, no upload is left over.
    session = server.session()
    for repo, tag in sorted(ledger.tags):
        pull(session, server.url, ledger, repo, tag)
    for path in server.root.glob("docker/registry/v2/blobs/sha256/*/*/data"):
        assert digest_of_file(path) == "sha256:" + path.parent.name
    assert list(server.root.glob(f"{REPOSITORIES}/**/_uploads/*")) == []
    assert "Traceback" not in server.log()


class SweepHookLock(FileReadWriteLock):
    """The collection lock, running `before` when the collector asks for it exclusively: that is
    between the collector's mark and its sweep."""

    def __init__(self, path: Path, before: Callable[[], Awaitable[None]]) -> None:
        super().__init__(path)
        self._before = before

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        await self._before()
        async with super().exclusive():
            yield


class SweepHookDriver(FilesystemDriver):
    def __init__(self, root: Path, before: Callable[[], Awaitable[None]]) -> None:
        super().__init__(root)
        self._before = before

    def lock(self, path: str) -> FileReadWriteLock:
        return SweepHookLock(self._full(path), self._before)


def backdate(root: Path, digests: Iterable[str], seconds: float) -> None:
    """Make content look as if it was pushed `seconds` ago: blob files and every link to them."""
    when = time.time() - seconds
    for digest in digests:
        hex_ = digest.removeprefix("sha256:")
        for path in [
            root / f"docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data",
            *root.glob(f"{REPOSITORIES}/**/sha256/{hex_}/link"),
        ]:
            os.utime(path, (when, when))


def test_an_index_pushed_between_mark_and_sweep_keeps_the_layers_of_its_children(
    race_server: RegistryServer,
) -> None:
    """The race test's deterministic sibling, for one interleaving it can only hit by luck.

    An untagged image pushed a while ago is garbage to `--delete-untagged`.
    A client pushes an index listing it (as `crane index append` or `docker
    manifest push` over existing images do) after a collection marked it
    dead and before the sweep: the push refreshes the child, so the sweep
    keeps it, and it must keep everything the child references too, or the
    index points at an image whose layers are gone.
    """
    server, session = race_server, race_server.session()
    child = push_image(session, server.url, "race/multi", "build", oci=True)
    assert session.delete(f"{server.url}/v2/race/multi/manifests/build").status_code == 202  # untagged
    child_blobs = {child.digest, sha256(child.config), *map(sha256, child.layers)}
    backdate(server.root, child_blobs, 600)
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, child.manifest)]}
    ).encode()

    async def push_index() -> None:
        response = await asyncio.to_thread(
            session.put,
            f"{server.url}/v2/race/multi/manifests/latest",
            data=index,
            headers={"Content-Type": OCI_INDEX},
            timeout=TIMEOUT,
        )
        check(response, 201, "PUT the index during the collection")

    driver = SweepHookDriver(server.root, push_index)
    report = asyncio.run(collect_garbage(driver, grace=datetime.timedelta(seconds=60), delete_untagged=True))
    assert report.blobs == [], f"collected {report.blobs}"
    assert stored_blobs(server) >= child_blobs | {sha256(index)}
    pulled = check(session.get(f"{server.url}/v2/race/multi/manifests/latest", timeout=TIMEOUT), 200, "GET")
    assert pulled.content == index
    for layer in child.layers:
        check(session.get(f"{server.url}/v2/race/multi/blobs/{sha256(layer)}", timeout=TIMEOUT), 200, "layer")
