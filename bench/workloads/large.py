"""push-large and pull-large: a few clients moving big blobs, throughput-bound.

push-large: every client pushes one blob of its own (monolithic: POST then PUT with
the body; chunked: PATCH pieces with Content-Range, then PUT). The server hashes
and stores every byte, so the figure is bounded by sha256 and by the storage's
write speed. pull-large: every client GETs one of the blobs pushed before and
hashes what arrives. Every blob pushed is read back once more after all the timed
workloads, by the verification pass (workloads/verify.py).
"""

from dataclasses import dataclass, field

from bench.api import Registry, new_session
from bench.content import Blob, BlobMaker
from bench.workloads.base import ERRORS, ClientResult, PushedBlob, Target, now

LARGE_REPO = "bench/large"
MONOLITHIC, CHUNKED = "monolithic", "chunked"


@dataclass
class PushLarge:
    mode: str  # MONOLITHIC or CHUNKED
    clients: int
    blob_bytes: int
    chunk_bytes: int
    repo: str = LARGE_REPO
    _blobs: dict[int, Blob] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return f"push-large-{self.mode}"

    def prepare(self, clients: list[int]) -> None:
        # one pool per process; each client's blob is the pool plus its own 32-byte suffix
        maker = BlobMaker(self.blob_bytes, self.blob_bytes, seed="cargobay-bench/large")
        self._blobs = {i: maker.make(self.blob_bytes, f"large/{self.mode}/{i}") for i in clients}

    async def run(self, client: int, target: Target, deadline: float) -> ClientResult:
        blob = self._blobs[client]
        result = ClientResult(client, "pusher")
        async with new_session(target.credentials, target.request_timeout, connections=1) as session:
            registry = Registry(session, target.url)
            result.started = now()
            try:
                if self.mode == MONOLITHIC:
                    await registry.push_monolithic(self.repo, blob)
                else:
                    await registry.push_chunked(self.repo, blob, self.chunk_bytes)
            except ERRORS as error:
                result.error("push", error)
            else:
                result.record("push", now() - result.started)
                result.bytes_up = blob.size
                result.produced.append(PushedBlob(self.repo, blob.digest, blob.size))
            result.finished = now()
        return result


@dataclass
class PullLarge:
    blobs: list[PushedBlob]  # one per client
    name: str = "pull-large"

    @property
    def clients(self) -> int:
        return len(self.blobs)

    def prepare(self, clients: list[int]) -> None:
        """Nothing to make: the blobs are on the server already."""

    async def run(self, client: int, target: Target, deadline: float) -> ClientResult:
        blob = self.blobs[client]
        result = ClientResult(client, "puller")
        async with new_session(target.credentials, target.request_timeout, connections=1) as session:
            registry = Registry(session, target.url)
            result.started = now()
            try:
                result.bytes_down = await registry.pull_blob(blob.repo, blob.digest, blob.size)
            except ERRORS as error:
                result.error("pull", error)
            else:
                result.record("pull", now() - result.started)
            result.finished = now()
        return result
