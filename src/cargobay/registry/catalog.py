"""The catalog: every repository that has manifests, found by walking the layout like registry:2."""

from collections.abc import AsyncIterator

from cargobay.registry.links import list_or_empty
from cargobay.storage import layout
from cargobay.storage.driver import StorageDriver

_REPOSITORY_MARKERS = ("_manifests", "_layers", "_uploads")


async def walk_repositories(
    driver: StorageDriver, *, include_without_manifests: bool = False
) -> AsyncIterator[str]:
    """Yield repository names in sorted order.

    A directory is a repository when it holds `_manifests` (registry:2's rule);
    with `include_without_manifests`, also when it holds only layers or uploads.
    Nested names (`team/app`) are directories below a repository or a plain folder.
    """
    markers = _REPOSITORY_MARKERS if include_without_manifests else (layout.MANIFESTS_DIR,)
    stack = [""]
    found: list[str] = []
    while stack:
        prefix = stack.pop()
        directory = f"{layout.REPOSITORIES}/{prefix}".rstrip("/")
        children = await list_or_empty(driver, directory)
        if prefix and any(c in markers for c in children):
            found.append(prefix.rstrip("/"))
        stack.extend(f"{prefix}{c}/" for c in children if not c.startswith("_"))
    for name in sorted(found):
        yield name


async def list_repositories(driver: StorageDriver) -> list[str]:
    return [name async for name in walk_repositories(driver)]
