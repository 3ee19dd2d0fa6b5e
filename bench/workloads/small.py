"""small: many clients asking cheap questions, latency- and per-request-cost-bound.

Each client cycles through GET of a manifest by tag, HEAD of it, and HEAD of one of
the image's blobs, as fast as answers come, for a fixed time. With auth on, every
request carries basic auth: this is where a server that runs bcrypt per request
pays for it (registry:2 does).
"""

from dataclasses import dataclass

from bench.api import Registry, new_session
from bench.content import BlobMaker, Image, make_image
from bench.workloads.base import ERRORS, ClientResult, Target, now, pause_after_error

SMALL_REPO, SMALL_TAG = "bench/small", "v1"
MAX_REQUESTS_PER_CLIENT = 2_000_000  # a bound far above what 20 s can reach
KINDS = ("get-manifest", "head-manifest", "head-blob")


def small_image() -> Image:
    """A small image: a config and three 4 KiB layers (the same bytes for both servers)."""
    maker = BlobMaker(4096, 4096, seed="cargobay-bench/small")
    return make_image(maker, "small", [4096, 4096, 4096])


async def seed(target: Target, clients: int) -> "Small":
    """Push the small image (not timed) and return the workload's parameters for it."""
    image = small_image()
    async with new_session(target.credentials, target.request_timeout, connections=1) as session:
        registry = Registry(session, target.url)
        for blob in image.blobs:
            await registry.push_monolithic(SMALL_REPO, blob)
        await registry.put_manifest(SMALL_REPO, SMALL_TAG, image.manifest, image.manifest_digest)
    return Small(
        clients=clients,
        manifest_digest=image.manifest_digest,
        manifest_size=len(image.manifest),
        blobs=[(blob.digest, blob.size) for blob in image.blobs],
    )


@dataclass
class Small:
    clients: int
    manifest_digest: str
    manifest_size: int
    blobs: list[tuple[str, int]]
    repo: str = SMALL_REPO
    tag: str = SMALL_TAG
    name: str = "small"

    def prepare(self, clients: list[int]) -> None:
        """Nothing to make: the image was seeded."""

    async def run(self, client: int, target: Target, deadline: float) -> ClientResult:
        result = ClientResult(client, "reader")
        async with new_session(target.credentials, target.request_timeout, connections=1) as session:
            registry = Registry(session, target.url)
            result.started = now()
            for n in range(MAX_REQUESTS_PER_CLIENT):
                if now() >= deadline or result.gave_up:
                    break
                kind = KINDS[(n + client) % len(KINDS)]
                began = now()
                try:
                    if kind == "get-manifest":
                        body = await registry.get_manifest(self.repo, self.tag, self.manifest_digest)
                        result.bytes_down += len(body)
                    elif kind == "head-manifest":
                        await registry.head_manifest(
                            self.repo, self.tag, self.manifest_digest, self.manifest_size
                        )
                    else:
                        digest, size = self.blobs[(n // len(KINDS)) % len(self.blobs)]
                        await registry.head_blob(self.repo, digest, size)
                except ERRORS as error:
                    result.error(kind, error)
                    await pause_after_error()
                else:
                    result.record("request", now() - began)
            result.finished = now()
        return result
