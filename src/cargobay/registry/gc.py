"""Online garbage collection: mark what tags (and, unless asked, untagged manifests) reach,
sweep the rest, while pushes and pulls go on.

Why it is safe without a read-only window:
- Mark runs without any lock, from a snapshot of storage.
- Everything that creates a reference refreshes what it references (the blob's
  data file, a child manifest's revision link) under the shared collection
  lock; the sweep re-reads those times under the exclusive lock and deletes
  only what is older than the start of the collection minus the grace period.
  It deletes blobs in holds of at most `SWEEP_HOLD_SECONDS`, each blob re-read
  in the hold that deletes it, so pushes wait moments, not the whole sweep.
  So content pushed, mounted or linked during the collection, or within the
  grace period before it, is never deleted, and a client that was told a blob
  exists (HEAD) finds it there when it pushes the manifest.
- Nothing is cached about blobs, so after a deletion every client sees 404 and
  uploads again.

Reachability follows indexes to their children and subjects to their
referrers, so `delete_untagged` never removes the children of a tagged index
(a registry:2 bug) nor the signatures of a kept image.
"""

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cargobay.registry.catalog import walk_repositories
from cargobay.registry.digests import Digest
from cargobay.registry.inventory import RepositoryInventory, modified, scan_blobs, scan_repository
from cargobay.registry.links import list_or_empty
from cargobay.registry.manifests import stored_manifest
from cargobay.storage import layout
from cargobay.storage.driver import PathNotFound, StorageDriver

log = logging.getLogger(__name__)

DEFAULT_GRACE = datetime.timedelta(hours=1)
SWEEP_HOLD_SECONDS = 0.2  # the longest the sweep holds the exclusive lock at a time
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class CollectionReport:
    dry_run: bool
    started: float
    manifests: list[tuple[str, Digest]] = field(default_factory=list)  # (repository, manifest)
    blobs: list[tuple[Digest, int]] = field(default_factory=list)  # (blob, size)
    repositories: list[str] = field(default_factory=list)  # left with nothing, removed
    kept_blobs: int = 0

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, size in self.blobs)


async def collect_garbage(
    driver: StorageDriver,
    *,
    grace: datetime.timedelta = DEFAULT_GRACE,
    delete_untagged: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> CollectionReport:
    report = CollectionReport(dry_run=dry_run, started=await _storage_now(driver))
    cutoff = report.started - grace.total_seconds()
    names = [name async for name in walk_repositories(driver, include_without_manifests=True)]
    inventories = []
    for done, name in enumerate(names, start=1):
        inventories.append(await scan_repository(driver, name))
        if progress:
            progress("scan", done, len(names))
    live_blobs: set[Digest] = set()
    live_manifests: dict[str, set[Digest]] = {}
    for done, inventory in enumerate(inventories, start=1):
        live_manifests[inventory.name] = await _mark(driver, inventory, delete_untagged, cutoff, live_blobs)
        if progress:
            progress("mark", done, len(inventories))
    dead_manifests = [
        (inventory.name, digest)
        for inventory in inventories
        for digest, refreshed in inventory.revisions.items()
        if digest not in live_manifests[inventory.name] and refreshed < cutoff
    ]
    dead_blobs = [
        (digest, info.size)
        async for digest, info in scan_blobs(driver)
        if digest not in live_blobs and info.modified < cutoff
    ]
    report.kept_blobs = len(live_blobs)
    if dry_run:
        report.manifests, report.blobs = dead_manifests, dead_blobs
        return report
    lock = driver.lock(layout.COLLECTION_LOCK)
    async with lock.exclusive():
        # A manifest refreshed since the mark (an index pushed meanwhile lists it) stays, and
        # so does everything it reaches, though nothing refreshed its layers. All in one
        # hold: an index rescued must not lose a child that an earlier hold deleted.
        by_name = {inventory.name: inventory for inventory in inventories}
        rescued: set[tuple[str, Digest]] = set()
        rescued_blobs: set[Digest] = set()
        for name, digest in dead_manifests:
            if not await _still_stale(driver, [layout.manifest_revision_link(name, digest)], cutoff):
                reached = await _reach(driver, by_name[name], {digest}, rescued_blobs)
                rescued.update((name, kept) for kept in reached)
        for name, digest in dead_manifests:
            if (name, digest) not in rescued:
                await _remove_manifest(driver, name, digest)
                report.manifests.append((name, digest))
    # Blobs in short holds, so that pushes wait a moment, not for the whole sweep: each blob
    # is re-checked under the hold that deletes it, and whatever references one from now on
    # refreshes it first (no manifest is left to rescue).
    linked_in: dict[Digest, list[str]] = {}
    for inventory in inventories:
        for digest in inventory.layers:
            linked_in.setdefault(digest, []).append(inventory.name)
    sweep = [(digest, size) for digest, size in dead_blobs if digest not in rescued_blobs]
    done = 0
    while done < len(sweep):
        async with lock.exclusive():
            hold_ends = time.monotonic() + SWEEP_HOLD_SECONDS
            while done < len(sweep) and time.monotonic() < hold_ends:
                digest, size = sweep[done]
                if await _still_stale(driver, [layout.blob_data(digest)], cutoff):
                    await driver.delete(layout.blob_dir(digest))
                    for name in linked_in.get(digest, []):
                        await driver.delete(layout.layer_dir(name, digest))
                    report.blobs.append((digest, size))
                done += 1
                if progress:
                    progress("sweep", done, len(sweep))
    # Only a repository that lost a manifest now, or had none at the scan, can be empty.
    maybe_empty = {name for name, _ in report.manifests} | {i.name for i in inventories if not i.revisions}
    async with lock.exclusive():
        for inventory in inventories:
            if inventory.name in maybe_empty and await _remove_if_empty(driver, inventory.name):
                report.repositories.append(inventory.name)
    for name, digest in report.manifests:
        log.info("collected manifest %s@%s", name, digest)
    for digest, size in report.blobs:
        log.info("collected blob %s (%d bytes)", digest, size)
    for name in report.repositories:
        log.info("removed empty repository %s", name)
    return report


async def _mark(
    driver: StorageDriver,
    inventory: RepositoryInventory,
    delete_untagged: bool,
    cutoff: float,
    live_blobs: set[Digest],
) -> set[Digest]:
    """The manifests of one repository that are reachable; adds every blob they need to `live_blobs`.

    Manifests within the grace period are roots even when untagged: they stay, so what
    they reach must stay too (an index pushed by digest, to be tagged a moment later).
    """
    roots = set(inventory.tags.values())
    roots |= {digest for digest, refreshed in inventory.revisions.items() if refreshed >= cutoff}
    if not delete_untagged:
        roots |= inventory.revisions.keys()
    return await _reach(driver, inventory, roots, live_blobs)


async def _reach(
    driver: StorageDriver, inventory: RepositoryInventory, roots: set[Digest], live_blobs: set[Digest]
) -> set[Digest]:
    """The manifests of one repository that `roots` reach; adds every blob they need to `live_blobs`."""
    live: set[Digest] = set()
    pending = list(roots)
    while pending:
        digest = pending.pop()
        if digest in live or digest not in inventory.revisions:
            continue
        try:
            payload = await driver.read_bytes(layout.blob_data(digest))
        except PathNotFound:
            continue  # a dangling revision: fsck reports it
        live.add(digest)
        live_blobs.add(digest)
        manifest = stored_manifest(payload, digest)
        live_blobs.update(blob.digest for blob in manifest.blobs)
        pending.extend(child.digest for child in manifest.children)
        pending.extend(inventory.referrers.get(digest, []))
    return live


async def _still_stale(driver: StorageDriver, paths: list[str], cutoff: float) -> bool:
    """Re-read under the exclusive lock: refreshed since the mark means referenced again,
    and gone means someone else (a client, another collector) removed it already."""
    for path in paths:
        refreshed = await modified(driver, path)
        if refreshed is None or refreshed >= cutoff:
            return False
    return True


async def _storage_now(driver: StorageDriver) -> float:
    """Now, by the clock that stamps the files: the file system's coarse clock can lag
    `time.time()` by milliseconds, enough for a grace of 0 to take a blob committed
    in the same instant."""
    await driver.write_bytes(layout.COLLECTION_STAMP, b"")
    stamped = await modified(driver, layout.COLLECTION_STAMP)
    return stamped if stamped is not None else time.time()


async def _remove_manifest(driver: StorageDriver, name: str, digest: Digest) -> None:
    """Remove a manifest from a repository: its revision, tag history and referrer entry."""
    try:
        subject = stored_manifest(await driver.read_bytes(layout.blob_data(digest)), digest).subject
    except PathNotFound:
        subject = None
    if subject is not None:
        await driver.delete(layout.referrer_dir(name, subject.digest, digest))
    for tag in await list_or_empty(driver, layout.tags(name)):
        await driver.delete(layout.tag_index_dir(name, tag, digest))
    await driver.delete(layout.manifest_revision_dir(name, digest))


async def _remove_if_empty(driver: StorageDriver, name: str) -> bool:
    """Drop a repository from the catalog when it has no manifests and no tags left,
    and its directory too when nothing else (layers, uploads) remains in it."""
    revisions = await _linked_count(driver, layout.manifest_revisions(name))
    tags = await list_or_empty(driver, layout.tags(name))
    if revisions or tags:
        return False
    had_manifests = bool(await list_or_empty(driver, layout.repository_manifests(name)))
    await driver.delete(layout.repository_manifests(name))
    await driver.delete(layout.referrers(name))
    if not await _linked_count(driver, layout.layers(name)):
        await driver.delete(layout.layers(name))
    if not await list_or_empty(driver, layout.uploads(name)):
        await driver.delete(layout.uploads(name))
    if not await list_or_empty(driver, layout.repository(name)):
        await driver.delete(layout.repository(name))
    return had_manifests


async def _linked_count(driver: StorageDriver, directory: str) -> int:
    count = 0
    for algorithm in await list_or_empty(driver, directory):
        count += len(await list_or_empty(driver, f"{directory}/{algorithm}"))
    return count
