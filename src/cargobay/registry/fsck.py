"""fsck: prove that what storage holds is what clients pushed, and that every link leads somewhere.

Four kinds of problems are found:
- a corrupt blob: its bytes no longer hash to its digest (bit rot, a bad
  disk, a hand edit); serving it would hand clients bad layers;
- a dangling link: a layer link, manifest revision link, tag or referrer link
  whose blob data is missing; the registry answers "unknown" for it anyway;
- a missing reference: a manifest whose config, layer or index child is not
  in storage or not in its repository, so pulling it fails;
- an orphaned upload: an upload directory without data, or started longer
  ago than `storage.maintenance.uploadpurging.age`.

With `repair`, a corrupt blob is moved to `layout.QUARANTINE` as
`<algorithm>-<hex>-<UTC time>` (never deleted: an operator decides), which
makes the registry answer 404 for it so clients push it again; dangling links
and orphaned uploads are removed. Missing references cannot be repaired here:
the report says which blob to push again. Every action is logged.

Safe while servers use the storage: checking only reads, and a finding is
confirmed again under the collection lock (shared; exclusive when repairing,
so no push or collection runs in between) before it is reported or acted on.
A corrupt blob is hashed again under the exclusive lock before it is moved.
"""

import asyncio
import datetime
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from cargobay.blocking import run_blocking
from cargobay.config import UploadPurging
from cargobay.registry import links
from cargobay.registry.blobs import BlobStore
from cargobay.registry.catalog import walk_repositories
from cargobay.registry.digests import Digest, new_hasher
from cargobay.registry.gc import Progress
from cargobay.registry.inventory import RepositoryInventory, modified, scan_blobs, scan_repository
from cargobay.registry.references import ManifestReader
from cargobay.registry.uploads import UploadSessions
from cargobay.storage import layout
from cargobay.storage.driver import FileInfo, PathNotFound, StorageDriver

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_AGE = UploadPurging().age  # storage.maintenance.uploadpurging.age
HASH_WORKERS = 4  # blobs hashed at once: hashing releases the GIL, so this uses several cores
# An upload directory gets its data file right after it is created; give a starting upload this
# long before calling it orphaned.
UPLOAD_SETTLE_SECONDS = 60.0


class Kind(StrEnum):
    CORRUPT = "corrupt blob"
    DANGLING = "dangling link"
    MISSING = "missing reference"
    UPLOAD = "orphaned upload"


@dataclass
class Finding:
    kind: Kind
    message: str
    repair: str | None = None  # what `repair` did about it; None when nothing was done


@dataclass
class FsckReport:
    repair: bool
    blobs: int = 0  # blobs hashed
    bytes: int = 0
    repositories: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def count(self, kind: Kind) -> int:
        return sum(1 for finding in self.findings if finding.kind == kind)


@dataclass
class _Candidate:
    """A problem seen without a lock: `confirm` checks it again, `fix` repairs it (None: can't)."""

    finding: Finding
    confirm: Callable[[], Awaitable[bool]]
    fix: Callable[[], Awaitable[str]] | None = None


@dataclass(frozen=True)
class _Corrupt:
    digest: Digest
    size: int
    actual: Digest


async def check_storage(
    driver: StorageDriver,
    *,
    repair: bool = False,
    upload_age: datetime.timedelta = DEFAULT_UPLOAD_AGE,
    progress: Progress | None = None,
) -> FsckReport:
    """Check every blob, link and upload; with `repair`, quarantine, unlink and remove what is broken.

    `progress` gets phase "hash" in bytes, then "check" in repositories.
    """
    report = FsckReport(repair=repair)
    blobs = [(digest, info) async for digest, info in scan_blobs(driver)]
    report.blobs, report.bytes = len(blobs), sum(info.size for _, info in blobs)
    corrupt = await _hash_all(driver, blobs, report.bytes, progress)
    quarantined: dict[Digest, str] = {}
    if repair and corrupt:
        async with driver.lock(layout.COLLECTION_LOCK).exclusive():
            for blob in corrupt:
                destination = await _quarantine(driver, blob.digest)
                if destination is not None:
                    quarantined[blob.digest] = destination
        corrupt = [blob for blob in corrupt if blob.digest in quarantined]  # the others are fine now
    present = {digest for digest, _ in blobs} - quarantined.keys()
    checker = _RepositoryChecker(driver, present, {blob.digest for blob in corrupt})
    names = [name async for name in walk_repositories(driver, include_without_manifests=True)]
    report.repositories = len(names)
    candidates: list[_Candidate] = []
    for done, name in enumerate(names, start=1):
        candidates += await checker.check(await scan_repository(driver, name))
        if progress:
            progress("check", done, len(names))
    candidates += await _old_uploads(driver, upload_age, checker.uploads_seen)
    for blob in corrupt:
        report.findings.append(_corrupt_finding(blob, checker.users[blob.digest], quarantined))
    lock = driver.lock(layout.COLLECTION_LOCK)
    async with lock.exclusive() if repair else lock.shared():
        for candidate in candidates:
            if not await candidate.confirm():
                continue  # changed while we looked: a push or a collection got there first
            if repair and candidate.fix is not None:
                candidate.finding.repair = await candidate.fix()
                log.info(
                    "fsck: %s: %s: %s",
                    candidate.finding.kind,
                    candidate.finding.message,
                    candidate.finding.repair,
                )
            report.findings.append(candidate.finding)
    return report


async def hash_blob(
    driver: StorageDriver, digest: Digest, on_bytes: Callable[[int], None] | None = None
) -> Digest | None:
    """What the stored bytes of `digest` hash to, streamed off the event loop; None when they are gone."""
    hasher = new_hasher(digest.algorithm)
    try:
        async for chunk in driver.read_chunks(layout.blob_data(digest)):
            await run_blocking(hasher.update, chunk)
            if on_bytes:
                on_bytes(len(chunk))
    except PathNotFound:
        return None
    return Digest(digest.algorithm, hasher.hexdigest())


async def _hash_all(
    driver: StorageDriver, blobs: list[tuple[Digest, FileInfo]], total: int, progress: Progress | None
) -> list[_Corrupt]:
    corrupt: list[_Corrupt] = []
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress("hash", min(done, total), total)

    async def worker(queue: Iterator[tuple[Digest, FileInfo]]) -> None:
        for digest, info in queue:  # the workers share one iterator: each blob goes to one of them
            actual = await hash_blob(driver, digest, advance)
            if actual is not None and actual != digest:
                corrupt.append(_Corrupt(digest, info.size, actual))

    queue = iter(blobs)
    await asyncio.gather(*(worker(queue) for _ in range(HASH_WORKERS)))
    if progress and done < total:
        progress("hash", total, total)  # blobs deleted or shrunk meanwhile: finish the bar
    return sorted(corrupt, key=lambda blob: blob.digest)


async def _quarantine(driver: StorageDriver, digest: Digest) -> str | None:
    """Move a corrupt blob aside, once hashed again under the lock; None when it is fine now
    (pushed again meanwhile) or gone."""
    actual = await hash_blob(driver, digest)
    if actual is None or actual == digest:
        return None
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    destination = f"{layout.QUARANTINE}/{digest.algorithm}-{digest.hex}-{stamp}"
    await driver.move(layout.blob_data(digest), destination)
    if not await links.list_or_empty(driver, layout.blob_dir(digest)):
        await driver.delete(layout.blob_dir(digest))
    log.info("fsck: quarantined corrupt blob %s (it hashes to %s) as %s", digest, actual, destination)
    return destination


def _corrupt_finding(blob: _Corrupt, users: set[str], quarantined: dict[Digest, str]) -> Finding:
    used = f"; used by {', '.join(sorted(users))}" if users else ""
    destination = quarantined.get(blob.digest)
    return Finding(
        Kind.CORRUPT,
        f"{blob.digest} ({blob.size} bytes) hashes to {blob.actual}{used}",
        None if destination is None else f"moved to {destination}",
    )


class _RepositoryChecker:
    """Finds the problems of one repository at a time, and who uses the corrupt blobs."""

    def __init__(self, driver: StorageDriver, present: set[Digest], corrupt: set[Digest]) -> None:
        self._driver = driver
        self._present = present  # blob data seen by the first scan; anything else is stat'ed
        self._corrupt = corrupt
        self._manifests = ManifestReader(driver)
        self.users: dict[Digest, set[str]] = defaultdict(set)  # corrupt blob -> `repo` or `repo@manifest`
        self.uploads_seen: set[tuple[str, str]] = set()

    async def check(self, inventory: RepositoryInventory) -> list[_Candidate]:
        name = inventory.name
        found: list[_Candidate] = []
        for digest in inventory.layers:
            self._note_use(digest, name)
            if not await self._has_data(digest):
                found.append(
                    self._dangling(layout.layer_link(name, digest), digest, layout.layer_dir(name, digest))
                )
        for digest in inventory.revisions:
            self._note_use(digest, f"{name}@{digest}")
            if await self._has_data(digest):
                found += await self._check_manifest(inventory, digest)
            else:
                path = layout.manifest_revision_link(name, digest)
                found.append(self._dangling(path, digest, layout.manifest_revision_dir(name, digest)))
        for tag, digest in inventory.tags.items():
            if not await self._has_data(digest):
                path = layout.tag_current_link(name, tag)
                found.append(self._dangling(path, digest, layout.tag_dir(name, tag), f"tag {name}:{tag}"))
        for subject, referrers in inventory.referrers.items():
            for digest in referrers:
                if not await self._has_data(digest):
                    path = layout.referrer_link(name, subject, digest)
                    found.append(self._dangling(path, digest, layout.referrer_dir(name, subject, digest)))
        for upload_id in inventory.uploads:
            self.uploads_seen.add((name, upload_id))
            if await _is_empty_upload(self._driver, name, upload_id):
                found.append(
                    _upload_candidate(self._driver, name, upload_id, "has no data", _is_empty_upload)
                )
        return found

    async def _check_manifest(self, inventory: RepositoryInventory, manifest: Digest) -> list[_Candidate]:
        name = inventory.name
        references = await self._manifests.references(manifest)
        if references is None:
            return []  # deleted since the scan
        found = []
        for blob in references.blobs:
            self._note_use(blob, f"{name}@{manifest}")
            if not await self._has_data(blob):
                found.append(
                    self._missing(name, manifest, f"blob {blob}, which has no data", self._no_data(blob))
                )
            elif blob not in inventory.layers:
                unlinked = self._unlinked(layout.layer_link(name, blob), blob)
                found.append(
                    self._missing(name, manifest, f"blob {blob}, which is not linked in {name}", unlinked)
                )
        for child in references.children:
            if child not in inventory.revisions:
                unlinked = self._unlinked(layout.manifest_revision_link(name, child), child)
                found.append(
                    self._missing(name, manifest, f"manifest {child}, which is not in {name}", unlinked)
                )
            elif not await self._has_data(child):
                no_data = self._no_data(child)
                found.append(self._missing(name, manifest, f"manifest {child}, which has no data", no_data))
        return found

    def _note_use(self, digest: Digest, user: str) -> None:
        if digest in self._corrupt:
            self.users[digest].add(user)

    async def _has_data(self, digest: Digest) -> bool:
        if digest in self._present:
            return True
        if await _data_exists(self._driver, digest):
            self._present.add(digest)  # pushed since the first scan
            return True
        return False

    def _dangling(self, path: str, digest: Digest, remove: str, what: str = "the link") -> _Candidate:
        """A link to `digest`, whose data is missing; repaired by removing directory `remove`."""
        driver = self._driver

        async def confirm() -> bool:
            return await links.read_link(driver, path) == digest and not await _data_exists(driver, digest)

        async def fix() -> str:
            await driver.delete(remove)
            return f"removed {what}"

        return _Candidate(Finding(Kind.DANGLING, f"{path} -> {digest}, which has no data"), confirm, fix)

    def _missing(
        self, name: str, manifest: Digest, what: str, still: Callable[[], Awaitable[bool]]
    ) -> _Candidate:
        """A manifest of `name` that cannot be pulled; no repair but pushing `what` again."""
        driver = self._driver

        async def confirm() -> bool:
            revision = layout.manifest_revision_link(name, manifest)
            return await links.read_link(driver, revision) == manifest and await still()

        return _Candidate(Finding(Kind.MISSING, f"{name}@{manifest} references {what}"), confirm)

    def _no_data(self, digest: Digest) -> Callable[[], Awaitable[bool]]:
        async def still() -> bool:
            return not await _data_exists(self._driver, digest)

        return still

    def _unlinked(self, path: str, digest: Digest) -> Callable[[], Awaitable[bool]]:
        async def still() -> bool:
            return await links.read_link(self._driver, path) != digest

        return still


async def _old_uploads(
    driver: StorageDriver, age: datetime.timedelta, seen: set[tuple[str, str]]
) -> list[_Candidate]:
    """Uploads older than `age`, found as the server's upload purging finds them."""
    found = []
    for entry in await UploadSessions(driver, BlobStore(driver)).purge(age, dry_run=True):
        name, _, upload_id = entry.rpartition("/")
        if (name, upload_id) in seen and await _is_empty_upload(driver, name, upload_id):
            continue  # already reported as having no data
        why = f"is older than {_hours(age)} (uploadpurging.age)"
        found.append(_upload_candidate(driver, name, upload_id, why, _upload_exists))
    return found


def _upload_candidate(
    driver: StorageDriver,
    name: str,
    upload_id: str,
    why: str,
    still: Callable[[StorageDriver, str, str], Awaitable[bool]],
) -> _Candidate:
    async def confirm() -> bool:
        return await still(driver, name, upload_id)

    async def fix() -> str:
        await driver.delete(layout.upload_dir(name, upload_id))
        return "removed the upload directory"

    return _Candidate(Finding(Kind.UPLOAD, f"{layout.upload_dir(name, upload_id)} {why}"), confirm, fix)


async def _is_empty_upload(driver: StorageDriver, name: str, upload_id: str) -> bool:
    """An upload directory without its data file that is not just being created."""
    created = await modified(driver, layout.upload_dir(name, upload_id))
    if created is None or created > time.time() - UPLOAD_SETTLE_SECONDS:
        return False
    return await modified(driver, layout.upload_data(name, upload_id)) is None


async def _upload_exists(driver: StorageDriver, name: str, upload_id: str) -> bool:
    return await modified(driver, layout.upload_dir(name, upload_id)) is not None


async def _data_exists(driver: StorageDriver, digest: Digest) -> bool:
    return await modified(driver, layout.blob_data(digest)) is not None


def _hours(age: datetime.timedelta) -> str:
    """`168h`, as the config writes it."""
    hours, seconds = divmod(int(age.total_seconds()), 3600)
    return f"{hours}h" if not seconds else f"{int(age.total_seconds())}s"
