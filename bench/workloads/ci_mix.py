"""ci-mix: the CI setup cargobay was built for, pushes and pulls of whole images at once.

Pushers push fresh images the way `docker push` does (HEAD, POST, one streamed
PATCH and a PUT per blob, up to 5 blobs at a time, then the manifest by tag);
pullers pull whole images the way `docker pull` does (the manifest by tag, then
config and layers, up to 3 at a time), each byte hashed. Pullers read images seeded
before the window so that every pull is a full image from the start; pushers write
new repositories' tags, so the storage grows while it is read, as in CI. The
images pushed are read back whole after the timed workloads (workloads/verify.py).
"""

import asyncio
import json
import random
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from bench.api import Registry, VerifyError, new_session
from bench.content import Blob, BlobMaker, Image, layer_sizes, make_image
from bench.plan import Plan
from bench.workloads.base import ERRORS, ClientResult, PushedImage, Target, now, pause_after_error

SEED_REPO, PUSH_REPO = "bench/ci-seed", "bench/ci-push"
PUSH_CONCURRENCY = 5  # docker's max-concurrent-uploads
PULL_CONCURRENCY = 3  # docker's max-concurrent-downloads
MAX_IMAGES_PER_CLIENT = 10_000
POOL_SEED = "cargobay-bench/ci"


def pushed(repo: str, tag: str, image: Image) -> PushedImage:
    """What a puller (or the verification pass) needs to read `image` back and check it."""
    return PushedImage(
        repo, tag, image.manifest_digest, tuple((blob.digest, blob.size) for blob in image.blobs)
    )


def _maker(plan: Plan) -> BlobMaker:
    return BlobMaker(plan.mix_layer_max_bytes, plan.mix_layer_granule, POOL_SEED)


def _image(maker: BlobMaker, plan: Plan, label: str) -> Image:
    sizes = layer_sizes(
        random.Random(label),
        plan.mix_layers,
        plan.mix_layer_min_bytes,
        plan.mix_layer_max_bytes,
        plan.mix_layer_granule,
    )
    return make_image(maker, label, sizes)


async def push_image(registry: Registry, repo: str, tag: str, image: Image) -> None:
    """docker push: every blob (HEAD, POST, PATCH, PUT), a few at a time, then the manifest."""
    gate = asyncio.Semaphore(PUSH_CONCURRENCY)

    async def one(blob: Blob) -> int:
        async with gate:
            await registry.push_streamed(repo, blob)
        return blob.size

    await all_of([one(blob) for blob in image.blobs])
    await registry.put_manifest(repo, tag, image.manifest, image.manifest_digest)


async def seed(target: Target, plan: Plan) -> "CiMix":
    """Push the images the pullers will read (not timed); return the workload's parameters."""
    maker = _maker(plan)
    seeds = []
    async with new_session(target.credentials, target.request_timeout, PUSH_CONCURRENCY) as session:
        registry = Registry(session, target.url)
        for n in range(plan.mix_seed_images):
            tag = f"seed-{n}"
            image = _image(maker, plan, f"ci/seed/{n}")
            await push_image(registry, SEED_REPO, tag, image)
            seeds.append(pushed(SEED_REPO, tag, image))
    return CiMix(plan=plan, seeds=seeds)


@dataclass
class CiMix:
    plan: Plan
    seeds: list[PushedImage]
    name: str = "ci-mix"
    _maker: BlobMaker | None = field(default=None, repr=False)

    @property
    def clients(self) -> int:
        return self.plan.mix_pushers + self.plan.mix_pullers

    def is_pusher(self, client: int) -> bool:
        return client < self.plan.mix_pushers

    def prepare(self, clients: list[int]) -> None:
        if any(self.is_pusher(client) for client in clients):
            self._maker = _maker(self.plan)

    async def run(self, client: int, target: Target, deadline: float) -> ClientResult:
        if self.is_pusher(client):
            return await self._push(client, target, deadline)
        return await self._pull(client, target, deadline)

    async def _push(self, client: int, target: Target, deadline: float) -> ClientResult:
        assert self._maker is not None, "prepare() makes the pool for pushers"
        result = ClientResult(client, "pusher")
        async with new_session(target.credentials, target.request_timeout, PUSH_CONCURRENCY) as session:
            registry = Registry(session, target.url)
            result.started = now()
            for n in range(MAX_IMAGES_PER_CLIENT):
                if now() >= deadline or result.gave_up:
                    break
                image = _image(self._maker, self.plan, f"ci/push/{client}/{n}")
                tag = f"p{client}-{n}"
                began = now()
                try:
                    await push_image(registry, PUSH_REPO, tag, image)
                except ERRORS as error:
                    result.error("image-push", error)
                    await pause_after_error()
                else:
                    result.record("image-push", now() - began)
                    result.bytes_up += image.size
                    result.produced.append(pushed(PUSH_REPO, tag, image))
            result.finished = now()
        return result

    async def _pull(self, client: int, target: Target, deadline: float) -> ClientResult:
        result = ClientResult(client, "puller")
        async with new_session(target.credentials, target.request_timeout, PULL_CONCURRENCY) as session:
            registry = Registry(session, target.url)
            result.started = now()
            for n in range(MAX_IMAGES_PER_CLIENT):
                if now() >= deadline or result.gave_up:
                    break
                image = self.seeds[(client + n) % len(self.seeds)]
                began = now()
                try:
                    received = await pull_image(registry, image)
                except ERRORS as error:
                    result.error("image-pull", error)
                    await pause_after_error()
                else:
                    result.record("image-pull", now() - began)
                    result.bytes_down += received
            result.finished = now()
        return result


async def pull_image(registry: Registry, image: PushedImage) -> int:
    """docker pull: the manifest by tag, then every blob it names (a few at a time), all verified."""
    body = await registry.get_manifest(image.repo, image.tag, image.manifest_digest)
    manifest = json.loads(body)
    named = [(manifest["config"]["digest"], manifest["config"]["size"])]
    named += [(layer["digest"], layer["size"]) for layer in manifest["layers"]]
    if tuple(named) != image.blobs:
        raise VerifyError(f"manifest {image.repo}:{image.tag} names other blobs than were pushed")
    gate = asyncio.Semaphore(PULL_CONCURRENCY)

    async def one(digest: str, size: int) -> int:
        async with gate:
            return await registry.pull_blob(image.repo, digest, size)

    sizes = await all_of([one(digest, size) for digest, size in named])
    return len(body) + sum(sizes)


async def all_of(calls: list[Coroutine[Any, Any, int]]) -> list[int]:
    """Run `calls` concurrently and wait for every one; then raise the first failure, if any.

    Waiting for all (rather than leaving the others running after a failure) keeps one
    image's requests from overlapping the next image's.
    """
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return [outcome for outcome in outcomes if isinstance(outcome, int)]
