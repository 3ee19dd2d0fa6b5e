"""What storage holds, read once: a repository's tags, manifests, referrers and layer links
with the times they were last refreshed, and every blob under `blobs/`.

Maintenance (collection, retention, usage, fsck) works from these snapshots,
so the layout is walked in one place.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cargobay.registry import links
from cargobay.registry.digests import Digest
from cargobay.registry.errors import DigestInvalid
from cargobay.storage import layout
from cargobay.storage.driver import FileInfo, PathNotFound, StorageDriver


@dataclass
class RepositoryInventory:
    name: str
    tags: dict[str, Digest] = field(default_factory=dict)  # tag -> the manifest it points at
    revisions: dict[Digest, float] = field(default_factory=dict)  # manifest -> link mtime
    layers: dict[Digest, float] = field(default_factory=dict)  # linked blob -> link mtime
    referrers: dict[Digest, list[Digest]] = field(default_factory=dict)  # subject -> referrers
    uploads: list[str] = field(default_factory=list)


async def scan_repository(driver: StorageDriver, name: str) -> RepositoryInventory:
    inventory = RepositoryInventory(name)
    for tag in await links.list_or_empty(driver, layout.tags(name)):
        digest = await links.read_link(driver, layout.tag_current_link(name, tag))
        if digest is not None:
            inventory.tags[tag] = digest
    inventory.revisions = await _linked_with_times(driver, layout.manifest_revisions(name))
    inventory.layers = await _linked_with_times(driver, layout.layers(name))
    referrers_root = layout.referrers(name)
    for algorithm in await links.list_or_empty(driver, referrers_root):
        for hex_ in await links.list_or_empty(driver, f"{referrers_root}/{algorithm}"):
            subject = _digest_or_none(f"{algorithm}:{hex_}")
            if subject is not None:
                directory = layout.referrers_dir(name, subject)
                inventory.referrers[subject] = await links.list_linked_digests(driver, directory)
    inventory.uploads = await links.list_or_empty(driver, layout.uploads(name))
    return inventory


async def scan_blobs(driver: StorageDriver) -> AsyncIterator[tuple[Digest, FileInfo]]:
    """Every blob whose data file exists, with its size and modification time."""
    for algorithm in await links.list_or_empty(driver, layout.BLOBS):
        for prefix in await links.list_or_empty(driver, f"{layout.BLOBS}/{algorithm}"):
            for hex_ in await links.list_or_empty(driver, f"{layout.BLOBS}/{algorithm}/{prefix}"):
                digest = _digest_or_none(f"{algorithm}:{hex_}")
                if digest is None:
                    continue
                try:
                    yield digest, await driver.stat(layout.blob_data(digest))
                except PathNotFound:
                    continue


async def modified(driver: StorageDriver, path: str) -> float | None:
    """Modification time of `path`, or None when it is gone."""
    try:
        return (await driver.stat(path)).modified
    except PathNotFound:
        return None


async def _linked_with_times(driver: StorageDriver, directory: str) -> dict[Digest, float]:
    found: dict[Digest, float] = {}
    for algorithm in await links.list_or_empty(driver, directory):
        for hex_ in await links.list_or_empty(driver, f"{directory}/{algorithm}"):
            path = f"{directory}/{algorithm}/{hex_}/{layout.LINK}"
            digest = await links.read_link(driver, path)
            mtime = await modified(driver, path)
            if digest is not None and mtime is not None:
                found[digest] = mtime
    return found


def _digest_or_none(text: str) -> Digest | None:
    try:
        return Digest.parse(text)
    except DigestInvalid:
        return None
