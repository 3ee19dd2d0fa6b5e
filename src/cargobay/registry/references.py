"""What stored manifests reference, read once per maintenance run.

`du` and `fsck` visit every manifest of every repository. Repositories share
manifests (one base image pushed to many), so each manifest is parsed once and
only the digests it references are kept, not its payload.
"""

from dataclasses import dataclass, field

from cargobay.registry.digests import Digest
from cargobay.registry.inventory import RepositoryInventory
from cargobay.registry.manifests import stored_manifest
from cargobay.storage import layout
from cargobay.storage.driver import PathNotFound, StorageDriver


@dataclass(frozen=True)
class ManifestReferences:
    blobs: tuple[Digest, ...]  # config and layers (foreign layers live elsewhere and are left out)
    children: tuple[Digest, ...]  # manifests an index lists


@dataclass
class RepositoryContent:
    """The content a repository's manifests hold on to."""

    manifests: set[Digest] = field(default_factory=set)
    blobs: set[Digest] = field(default_factory=set)  # configs and layers


class ManifestReader:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver
        self._known: dict[Digest, ManifestReferences] = {}

    async def references(self, digest: Digest) -> ManifestReferences | None:
        """What manifest `digest` references, or None when its data is missing.

        A missing manifest is not remembered: it may be pushed while the run goes on.
        """
        known = self._known.get(digest)
        if known is not None:
            return known
        try:
            payload = await self._driver.read_bytes(layout.blob_data(digest))
        except PathNotFound:
            return None
        manifest = stored_manifest(payload, digest)
        known = ManifestReferences(
            blobs=tuple(blob.digest for blob in manifest.blobs),
            children=tuple(child.digest for child in manifest.children),
        )
        self._known[digest] = known
        return known


async def repository_content(reader: ManifestReader, inventory: RepositoryInventory) -> RepositoryContent:
    """Every manifest of the repository, tagged or not, the index children they list, and the
    configs and layers of all of them: what the repository costs in storage.

    Manifests whose data is missing are left out (fsck reports them).
    """
    content = RepositoryContent()
    pending = [*inventory.revisions, *inventory.tags.values()]
    while pending:
        digest = pending.pop()
        if digest in content.manifests:
            continue
        references = await reader.references(digest)
        if references is None:
            continue
        content.manifests.add(digest)
        content.blobs.update(references.blobs)
        pending.extend(references.children)
    return content
