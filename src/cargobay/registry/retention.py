"""Retention: which tags may go, by the rules in the config and by the pusher's own expiry.

A rule applies to the repositories its glob matches (the first matching rule
wins). Against each tag it weighs the push time (the tag link's modification
time: every push of the tag rewrites it) and the last pull of the manifest the
tag points at (`PullLog`). Tags matching `keeptags`, and tags whose manifest
was pulled within `keeppulledwithin`, are never deleted; of the rest, those
beyond the `keepnewest` newest or older than `maxage` go.

Independently of any rule, a pusher can give a tag a lifetime: the manifest
annotation or image label `cargobay.expires-after` (`48h`, `30m`) makes the tag
expire that long after it was pushed, subject to the same protections.

Deleting a tag removes the tag only; a collection with `--delete-untagged`
then frees what no tag reaches any more.
"""

import datetime
import fnmatch
import json
import logging
from dataclasses import dataclass

from cargobay.config import RetentionRule
from cargobay.durations import parse_duration
from cargobay.registry import mediatypes
from cargobay.registry.catalog import walk_repositories
from cargobay.registry.digests import Digest
from cargobay.registry.inventory import modified
from cargobay.registry.links import read_link
from cargobay.registry.manifests import stored_manifest
from cargobay.registry.pulls import PullLog
from cargobay.storage import layout
from cargobay.storage.driver import PathNotFound, StorageDriver

log = logging.getLogger(__name__)

EXPIRY_KEY = "cargobay.expires-after"
ATTESTATION_KEY = "vnd.docker.reference.type"  # how buildx marks the attestation manifests of an index


@dataclass(frozen=True)
class TagDeletion:
    repository: str
    tag: str
    digest: Digest
    pushed: float  # the tag link's modification time when the decision was made
    pulled: float | None  # the manifest's last pull then
    reason: str


@dataclass(frozen=True)
class _Tag:
    name: str
    digest: Digest
    pushed: float


async def plan_retention(
    driver: StorageDriver, rules: tuple[RetentionRule, ...], now: float
) -> list[TagDeletion]:
    """The tags the rules and expiries delete at time `now`, each with its reason."""
    pulls = PullLog(driver)
    deletions: list[TagDeletion] = []
    async for name in walk_repositories(driver):
        rule = next((r for r in rules if fnmatch.fnmatchcase(name, r.repositories)), None)
        tags = sorted(await _tags(driver, name), key=lambda t: t.pushed, reverse=True)
        for rank, tag in enumerate(tags):
            reason = await _reason_to_delete(driver, name, tag, rank, rule, now)
            if reason is None:
                continue
            pulled = await pulls.last_pull(name, tag.digest)
            if not _protected(tag, pulled, rule, now):
                deletions.append(TagDeletion(name, tag.name, tag.digest, tag.pushed, pulled, reason))
    return deletions


async def apply_retention(driver: StorageDriver, deletions: list[TagDeletion]) -> list[TagDeletion]:
    """Delete the planned tags that nobody pushed or pulled again since; returns those deleted.

    Under the exclusive collection lock, so a push of the same tag or a pull (which
    hold it shared) lands either before the re-check, and the tag stays, or after.
    """
    pulls = PullLog(driver)
    done: list[TagDeletion] = []
    async with driver.lock(layout.COLLECTION_LOCK).exclusive():
        for deletion in deletions:
            link = layout.tag_current_link(deletion.repository, deletion.tag)
            if await modified(driver, link) != deletion.pushed:
                continue  # pushed again since the plan
            if await pulls.last_pull(deletion.repository, deletion.digest) != deletion.pulled:
                continue  # pulled since the plan: still in use
            await driver.delete(layout.tag_dir(deletion.repository, deletion.tag))
            log.info(
                "retention deleted tag %s:%s (%s): %s",
                deletion.repository,
                deletion.tag,
                deletion.digest,
                deletion.reason,
            )
            done.append(deletion)
    return done


async def _tags(driver: StorageDriver, name: str) -> list[_Tag]:
    found = []
    try:
        names = await driver.list(layout.tags(name))
    except PathNotFound:
        return []
    for tag in names:
        link = layout.tag_current_link(name, tag)
        digest, pushed = await read_link(driver, link), await modified(driver, link)
        if digest is not None and pushed is not None:
            found.append(_Tag(tag, digest, pushed))
    return found


async def _reason_to_delete(
    driver: StorageDriver, name: str, tag: _Tag, rank: int, rule: RetentionRule | None, now: float
) -> str | None:
    if rule is not None and rule.keep_newest is not None and rank >= rule.keep_newest:
        return f"not among the {rule.keep_newest} newest tags of {rule.repositories}"
    if rule is not None and rule.max_age is not None and tag.pushed < now - rule.max_age.total_seconds():
        return f"pushed more than {rule.max_age} ago"
    lifetime = await _expiry(driver, tag.digest)
    if lifetime is not None and tag.pushed + lifetime < now:
        return f"expired: {EXPIRY_KEY} gave it {datetime.timedelta(seconds=lifetime)}"
    return None


def _protected(tag: _Tag, pulled: float | None, rule: RetentionRule | None, now: float) -> bool:
    if rule is None:
        return False
    if rule.keep_tags is not None and rule.keep_tags.search(tag.name):
        return True
    if rule.keep_pulled_within is not None:
        return pulled is not None and pulled >= now - rule.keep_pulled_within.total_seconds()
    return False


async def _expiry(driver: StorageDriver, digest: Digest) -> float | None:
    """Seconds of life the pusher gave: a manifest annotation, else the image config's label;
    for an index (what `docker buildx build --push` sends), the same of its platform images."""
    value = await _expiry_value(driver, digest, follow_children=True)
    if not value:  # none, or empty: a `LABEL cargobay.expires-after=` cancelling an inherited one
        return None
    try:
        return parse_duration(value).total_seconds()
    except ValueError:
        log.warning("ignoring %s=%r on %s: not a duration such as 48h", EXPIRY_KEY, value, digest)
        return None


async def _expiry_value(driver: StorageDriver, digest: Digest, *, follow_children: bool) -> str | None:
    try:
        manifest = stored_manifest(await driver.read_bytes(layout.blob_data(digest)), digest)
    except PathNotFound:
        return None
    value = manifest.annotations.get(EXPIRY_KEY)
    if value is None and manifest.media_type in mediatypes.IMAGE_MANIFESTS and manifest.blobs:
        value = await _config_label(driver, manifest.blobs[0].digest)
    if value is None and follow_children:
        for child in manifest.children:
            if child.annotations.get(ATTESTATION_KEY) == "attestation-manifest":
                continue  # buildx's provenance: no labels of the image there
            value = await _expiry_value(driver, child.digest, follow_children=False)
            if value is not None:
                break
    return value


async def _config_label(driver: StorageDriver, config: Digest) -> str | None:
    try:
        document = json.loads(await driver.read_bytes(layout.blob_data(config)))
    except (PathNotFound, ValueError):
        return None
    labels = (document.get("config") or {}).get("Labels") or {} if isinstance(document, dict) else {}
    value = labels.get(EXPIRY_KEY) if isinstance(labels, dict) else None
    return value if isinstance(value, str) else None
