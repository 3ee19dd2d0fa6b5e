"""The sizes, client counts and durations of a run, in one place.

The full plan is issue 5's: its figures are only comparable with the issue's targets
when these numbers are the issue's. The quick plan keeps every workload and every
client count (so the smoke test exercises the same code paths and concurrency) and
shrinks only bytes and seconds.
"""

from dataclasses import asdict, dataclass, replace
from typing import Any

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Plan:
    # push-large and pull-large: each client moves one blob of this size
    large_clients: int = 8
    large_blob_bytes: int = 256 * MiB
    large_chunk_bytes: int = 16 * MiB
    # small: HEAD/GET of a manifest by tag and HEAD of blobs
    small_clients: int = 13
    small_seconds: float = 20.0
    # ci-mix: whole images pushed and pulled at the same time
    mix_pushers: int = 3
    mix_pullers: int = 10
    mix_seconds: float = 30.0
    mix_layers: int = 5
    mix_layer_min_bytes: int = 1 * MiB
    mix_layer_max_bytes: int = 64 * MiB
    mix_layer_granule: int = 1 * MiB  # layer sizes are multiples of this (digests are precomputed per step)
    mix_seed_images: int = 4  # images pushed before the window, for the pullers
    # verify (untimed): everything push-large and ci-mix pushed, read back by this many clients
    verify_clients: int = 8
    # the machine's limits
    sha256_bytes: int = 1 * GiB
    tcp_bytes: int = 4 * GiB
    write_bytes: int = 2 * GiB
    # bounds: no single request, and no workload, may run longer than these
    request_timeout_seconds: float = 180.0
    workload_timeout_seconds: float = 240.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Plan()

QUICK = replace(
    FULL,
    large_blob_bytes=8 * MiB,
    large_chunk_bytes=2 * MiB,
    small_seconds=2.0,
    mix_seconds=3.0,
    mix_layer_min_bytes=64 * KiB,
    mix_layer_max_bytes=2 * MiB,
    mix_layer_granule=64 * KiB,
    mix_seed_images=2,
    sha256_bytes=64 * MiB,
    tcp_bytes=256 * MiB,
    write_bytes=64 * MiB,
    request_timeout_seconds=60.0,
    workload_timeout_seconds=60.0,
)
