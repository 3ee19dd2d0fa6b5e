"""Tags: names that point at a manifest of a repository, laid out as registry:2 lays them out."""

from cargobay.registry import links
from cargobay.registry.digests import Digest
from cargobay.registry.errors import ManifestUnknown, NameUnknown
from cargobay.storage import layout
from cargobay.storage.driver import PathNotFound, StorageDriver


class TagStore:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def resolve_tag(self, name: str, tag: str) -> Digest:
        digest = await links.read_link(self._driver, layout.tag_current_link(name, tag))
        if digest is None:
            raise ManifestUnknown(f"manifest tagged {tag!r} is not in {name}", detail={"tag": tag})
        return digest

    async def tag(self, name: str, tag: str, digest: Digest) -> None:
        # The index link first: it records history, the current link makes the tag visible.
        await links.write_link(self._driver, layout.tag_index_link(name, tag, digest), digest)
        await links.write_link(self._driver, layout.tag_current_link(name, tag), digest)

    async def untag(self, name: str, tag: str) -> None:
        await self.resolve_tag(name, tag)
        await self._driver.delete(layout.tag_dir(name, tag))

    async def list_tags(self, name: str) -> list[str]:
        """All tags of `name`, sorted; `NameUnknown` when there is no such repository."""
        try:
            return sorted(await self._driver.list(layout.tags(name)))
        except PathNotFound:
            pass
        try:
            await self._driver.list(layout.repository_manifests(name))
        except PathNotFound:
            raise NameUnknown(detail={"name": name}) from None
        return []

    async def tags_pointing_at(self, name: str, digest: Digest) -> list[str]:
        try:
            all_tags = await self._driver.list(layout.tags(name))
        except PathNotFound:
            return []
        return [
            tag
            for tag in all_tags
            if await links.read_link(self._driver, layout.tag_current_link(name, tag)) == digest
        ]
