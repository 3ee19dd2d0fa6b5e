"""verify: after the timed workloads, every blob and image they pushed is read back and hashed.

A push is checked when it happens only by the server's answer (201 and the digest
header): a server that acknowledged and then stored other bytes, or lost them while
the later workloads ran, would pass. So after the last timed workload this untimed
pass GETs each blob push-large pushed (monolithic and chunked; pull-large read only
some of them) and pulls each image ci-mix pushed the way `docker pull` does
(manifest by tag, config, layers), hashing every byte. A failure is an error of
its own record, so the run exits 1 as for any other failed verification.

The items are dealt to the clients largest first, each to the least loaded client,
so that the pass lasts about as long as one client's share; the harness spreads the
clients over the client processes as for every workload.
"""

from dataclasses import dataclass

from bench.api import Registry, new_session
from bench.workloads.base import ERRORS, ClientResult, Pushed, PushedImage, Target, now
from bench.workloads.ci_mix import PULL_CONCURRENCY, pull_image

BLOB, IMAGE = "blob", "image"  # the kinds of operation counted in the record


def deal(items: list[Pushed], clients: int) -> list[list[Pushed]]:
    """`items` split into at most `clients` shares of about equal bytes (largest first, to the lightest)."""
    shares: list[list[Pushed]] = [[] for _ in range(max(1, min(clients, len(items))))]
    loads = [0] * len(shares)
    for item in sorted(items, key=lambda item: item.size, reverse=True):
        lightest = loads.index(min(loads))
        shares[lightest].append(item)
        loads[lightest] += item.size
    return shares


@dataclass
class Verify:
    shares: list[list[Pushed]]  # what each client reads back
    name: str = "verify"

    @staticmethod
    def of(items: list[Pushed], clients: int) -> "Verify":
        return Verify(deal(items, clients))

    @property
    def clients(self) -> int:
        return len(self.shares)

    def prepare(self, clients: list[int]) -> None:
        """Nothing to make: the items are on the server already."""

    async def run(self, client: int, target: Target, deadline: float) -> ClientResult:
        """Every item of this client's share, one after the other; none is skipped after an error."""
        result = ClientResult(client, "verifier")
        async with new_session(target.credentials, target.request_timeout, PULL_CONCURRENCY) as session:
            registry = Registry(session, target.url)
            result.started = now()
            for item in self.shares[client]:
                kind = IMAGE if isinstance(item, PushedImage) else BLOB
                began = now()
                try:
                    if isinstance(item, PushedImage):
                        received = await pull_image(registry, item)
                    else:
                        received = await registry.pull_blob(item.repo, item.digest, item.size)
                except ERRORS as error:
                    result.error(kind, error)
                else:
                    result.record(kind, now() - began)
                    result.bytes_down += received
            result.finished = now()
        return result
