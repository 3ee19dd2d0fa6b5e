"""Blob and image bytes for the workloads: deterministic, unique, and cheap to digest.

Every blob is a prefix of one pseudo-random pool (SHAKE-128 of a fixed seed, so
both servers receive exactly the same bytes) followed by a 32-byte suffix that
makes it unique. The sha256 state after each possible prefix length is computed
once per process, so the digest of a new blob costs one copy of that state and
32 bytes of hashing: the load generator spends its CPU on HTTP, not on making
data, and a pusher can produce a fresh image at any rate the server can take.
Blob bodies are never concatenated: they are sent as memoryview pieces.
"""

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

SUFFIX_BYTES = 32
PIECE_BYTES = 1 << 20  # the size of the pieces a body is sent in

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_ACCEPT = ", ".join(
    [
        DOCKER_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pool_bytes(size: int, seed: str) -> bytes:
    """`size` pseudo-random bytes, the same for the same seed (SHAKE-128 runs at ~0.5 GB/s)."""
    return hashlib.shake_128(seed.encode()).digest(size)


def unique_suffix(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@dataclass(frozen=True)
class Blob:
    """A blob's bytes as parts that are never joined, and its digest."""

    digest: str
    size: int
    parts: tuple[memoryview, ...]

    def pieces(
        self, start: int = 0, end: int | None = None, piece: int = PIECE_BYTES
    ) -> Iterator[memoryview]:
        """The bytes [start, end) as memoryviews of at most `piece` bytes."""
        end = self.size if end is None else end
        offset = 0
        for part in self.parts:
            lo, hi = max(start, offset), min(end, offset + len(part))
            for at in range(lo, hi, piece):
                yield part[at - offset : min(hi, at + piece) - offset]
            offset += len(part)

    @staticmethod
    def of_bytes(data: bytes) -> "Blob":
        return Blob(sha256_digest(data), len(data), (memoryview(data),))


class BlobMaker:
    """Makes blobs of the sizes `granule * k` (+ 0 for k >= 1) from one pool.

    Sizes are multiples of `granule` so that the digest state of every prefix length
    can be kept: (max_bytes / granule) states of ~200 bytes each.
    """

    def __init__(self, max_bytes: int, granule: int, seed: str) -> None:
        if max_bytes % granule or granule <= SUFFIX_BYTES:
            raise ValueError("max_bytes must be a multiple of granule, and granule > 32")
        self.granule = granule
        self.pool = memoryview(pool_bytes(max_bytes - SUFFIX_BYTES, seed))
        hasher = hashlib.sha256()
        self._states: dict[int, hashlib._Hash] = {}
        done = 0
        for size in range(granule, max_bytes + 1, granule):
            prefix = size - SUFFIX_BYTES
            hasher.update(self.pool[done:prefix])
            done = prefix
            self._states[size] = hasher.copy()

    def make(self, size: int, label: str) -> Blob:
        """A blob of `size` bytes (a multiple of the granule), unique by `label`."""
        state = self._states.get(size)
        if state is None:
            raise ValueError(f"no blob size {size}: sizes are multiples of {self.granule}")
        suffix = unique_suffix(label)
        hasher = state.copy()
        hasher.update(suffix)
        prefix = size - SUFFIX_BYTES
        return Blob("sha256:" + hasher.hexdigest(), size, (self.pool[:prefix], memoryview(suffix)))


@dataclass(frozen=True)
class Image:
    """A whole image as `docker push` sends it: config, layers, manifest (Docker schema 2)."""

    config: Blob
    layers: tuple[Blob, ...]
    manifest: bytes
    manifest_digest: str

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    @property
    def size(self) -> int:
        return sum(blob.size for blob in self.blobs) + len(self.manifest)


def make_image(maker: BlobMaker, label: str, layer_sizes: list[int]) -> Image:
    """An image whose layers are blobs of `layer_sizes`, unique by `label`."""
    layers = tuple(maker.make(size, f"{label}/layer{i}") for i, size in enumerate(layer_sizes))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"bench": label}},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        },
        sort_keys=True,
    ).encode()
    config_blob = Blob.of_bytes(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": config_blob.size, "digest": config_blob.digest},
            "layers": [
                {"mediaType": DOCKER_LAYER, "size": layer.size, "digest": layer.digest} for layer in layers
            ],
        },
        indent=3,
    ).encode()
    return Image(config_blob, layers, manifest, sha256_digest(manifest))


def layer_sizes(rng: random.Random, count: int, low: int, high: int, granule: int) -> list[int]:
    """`count` sizes uniform in [low, high], multiples of `granule`."""
    return [granule * rng.randint(max(1, low // granule), high // granule) for _ in range(count)]
