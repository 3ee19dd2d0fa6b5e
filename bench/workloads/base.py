"""What every workload is made of: a target, one client's result, and the workload protocol.

A workload is a picklable dataclass of parameters. In each client process the
harness calls `prepare` once with the indices of that process's clients (making
data here is not timed), then runs `run` for each of them concurrently after the
common start signal. Duration-bound workloads stop starting new work at the
deadline and finish what is in flight; count-bound ones stop when done. Every
loop also has a hard bound on iterations, so nothing can spin forever.
"""

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from bench.api import VerifyError

MAX_ERRORS_PER_CLIENT = 20  # after this many a client stops: the run is already invalid
ERROR_PAUSE_SECONDS = 0.05  # after an error, so that a failing server is not hammered in a tight loop
ERRORS = (VerifyError, aiohttp.ClientError, TimeoutError, OSError)


@dataclass(frozen=True)
class Target:
    """The server the clients talk to."""

    url: str
    credentials: tuple[str, str] | None
    request_timeout: float


@dataclass(frozen=True)
class PushedBlob:
    """A blob a client pushed and the server acknowledged (201 and its digest)."""

    repo: str
    digest: str
    size: int


@dataclass(frozen=True)
class PushedImage:
    """An image pushed whole: its blobs (config first, then layers), then its manifest by tag."""

    repo: str
    tag: str
    manifest_digest: str
    blobs: tuple[tuple[str, int], ...]  # (digest, size)

    @property
    def size(self) -> int:
        """Its blobs' bytes (the manifest's few are left out: a read-back checks them by digest)."""
        return sum(size for _, size in self.blobs)


# what the verification pass reads back after the timed workloads (workloads/verify.py)
Pushed = PushedBlob | PushedImage


@dataclass
class ClientResult:
    """What one client did: counts and durations per kind of operation, bytes each way, errors."""

    client: int
    role: str
    started: float = 0.0  # time.monotonic(), comparable across processes on one machine
    finished: float = 0.0
    bytes_up: int = 0
    bytes_down: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    produced: list[Pushed] = field(default_factory=list)  # what was pushed, for reading back

    def record(self, kind: str, seconds: float) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.durations.setdefault(kind, []).append(seconds)

    def error(self, kind: str, error: BaseException) -> None:
        self.error_count += 1
        if len(self.errors) < 5:  # keep a few messages; the count is what matters
            self.errors.append(f"{self.role} {self.client} {kind}: {type(error).__name__}: {error}")

    @property
    def gave_up(self) -> bool:
        return self.error_count >= MAX_ERRORS_PER_CLIENT


class Workload(Protocol):
    """Parameters of one workload; `prepare` and `run` execute in the client processes."""

    @property
    def name(self) -> str:
        """The workload's name in the report."""
        ...

    @property
    def clients(self) -> int:
        """How many clients run it."""
        ...

    def prepare(self, clients: list[int]) -> None:
        """Build this process's data for `clients` (not timed)."""

    async def run(self, client: int, target: Target, deadline: float) -> ClientResult:
        """One client's work; `deadline` is a time.monotonic() for duration-bound workloads."""
        ...


def now() -> float:
    return time.monotonic()


async def pause_after_error() -> None:
    await asyncio.sleep(ERROR_PAUSE_SECONDS)
