"""Link files: small files that hold a digest and make content part of a repository."""

from cargobay.registry.digests import Digest
from cargobay.registry.errors import DigestInvalid
from cargobay.storage.driver import PathNotFound, StorageDriver


async def read_link(driver: StorageDriver, path: str) -> Digest | None:
    """The digest a link file holds, or None when there is no such link or it holds garbage."""
    try:
        return Digest.parse((await driver.read_bytes(path)).decode().strip())
    except (PathNotFound, DigestInvalid, UnicodeDecodeError):
        return None


async def write_link(driver: StorageDriver, path: str, digest: Digest) -> None:
    await driver.write_bytes(path, str(digest).encode())


async def list_linked_digests(driver: StorageDriver, directory: str) -> list[Digest]:
    """Digests laid out as `<directory>/<algorithm>/<hex>/link` (revisions, referrers)."""
    found: list[Digest] = []
    for algorithm in await list_or_empty(driver, directory):
        for hex_ in await list_or_empty(driver, f"{directory}/{algorithm}"):
            digest = await read_link(driver, f"{directory}/{algorithm}/{hex_}/link")
            if digest is not None:
                found.append(digest)
    return found


async def list_or_empty(driver: StorageDriver, directory: str) -> list[str]:
    try:
        return await driver.list(directory)
    except PathNotFound:
        return []
