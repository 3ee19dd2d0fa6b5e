"""Disk usage per repository: what each costs, and what deleting it would free.

Blobs are stored once and shared by every repository that references them, so
a repository's bytes are split in two: unique bytes, referenced by this
repository only (deleting the repository and collecting garbage frees them),
and shared bytes, also referenced by another repository (they stay). A
repository references its manifests, tagged or not, the children of its
indexes, and every config and layer of those. Bytes under `blobs/` that no
manifest references are what a garbage collection can free.

Sizes are the stored sizes under `blobs/`, read from one snapshot taken at the
start; content pushed during the run is not counted.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Any

from cargobay.registry.catalog import walk_repositories
from cargobay.registry.digests import Digest
from cargobay.registry.gc import Progress
from cargobay.registry.inventory import scan_blobs, scan_repository
from cargobay.registry.references import ManifestReader, repository_content
from cargobay.storage.driver import StorageDriver


@dataclass(frozen=True)
class RepositoryUsage:
    name: str
    manifests: int
    blobs: int  # configs and layers
    unique_bytes: int  # referenced by this repository only
    shared_bytes: int  # also referenced by another repository

    @property
    def total_bytes(self) -> int:
        return self.unique_bytes + self.shared_bytes


@dataclass(frozen=True)
class StorageUsage:
    repositories: list[RepositoryUsage]  # biggest first
    stored_blobs: int  # everything under blobs/, manifests included
    stored_bytes: int
    unreferenced_blobs: int  # referenced by no manifest of any repository
    unreferenced_bytes: int

    @property
    def referenced_bytes(self) -> int:
        return self.stored_bytes - self.unreferenced_bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "repositories": [
                {
                    "name": usage.name,
                    "manifests": usage.manifests,
                    "blobs": usage.blobs,
                    "uniqueBytes": usage.unique_bytes,
                    "sharedBytes": usage.shared_bytes,
                    "totalBytes": usage.total_bytes,
                }
                for usage in self.repositories
            ],
            "storedBlobs": self.stored_blobs,
            "storedBytes": self.stored_bytes,
            "referencedBytes": self.referenced_bytes,
            "unreferencedBlobs": self.unreferenced_blobs,
            "unreferencedBytes": self.unreferenced_bytes,
        }


async def measure_usage(driver: StorageDriver, *, progress: Progress | None = None) -> StorageUsage:
    """Bytes per repository (unique and shared) and for the whole storage."""
    sizes = {digest: info.size async for digest, info in scan_blobs(driver)}
    names = [name async for name in walk_repositories(driver)]
    reader = ManifestReader(driver)
    manifests: dict[str, set[Digest]] = {}
    blobs: dict[str, set[Digest]] = {}
    for done, name in enumerate(names, start=1):
        content = await repository_content(reader, await scan_repository(driver, name))
        manifests[name] = content.manifests & sizes.keys()
        blobs[name] = content.blobs & sizes.keys()
        if progress:
            progress("measure", done, len(names))
    holders = Counter(digest for name in names for digest in manifests[name] | blobs[name])
    repositories = []
    for name in names:
        referenced = manifests[name] | blobs[name]
        repositories.append(
            RepositoryUsage(
                name=name,
                manifests=len(manifests[name]),
                blobs=len(blobs[name]),
                unique_bytes=sum(sizes[digest] for digest in referenced if holders[digest] == 1),
                shared_bytes=sum(sizes[digest] for digest in referenced if holders[digest] > 1),
            )
        )
    repositories.sort(key=lambda usage: (-usage.total_bytes, usage.name))
    unreferenced = sizes.keys() - holders.keys()
    return StorageUsage(
        repositories=repositories,
        stored_blobs=len(sizes),
        stored_bytes=sum(sizes.values()),
        unreferenced_blobs=len(unreferenced),
        unreferenced_bytes=sum(sizes[digest] for digest in unreferenced),
    )
