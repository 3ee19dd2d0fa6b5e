"""`/v2/<name>/manifests/<reference>`: push, pull (with `Accept` negotiation) and delete."""

from aiohttp import web

from cargobay.http.context import REGISTRY, SETTINGS
from cargobay.http.params import repository_name
from cargobay.http.urls import absolute_url
from cargobay.registry.digests import is_digest
from cargobay.registry.errors import ManifestTooLarge, ManifestUnknown
from cargobay.registry.manifests import MAX_MANIFEST_BYTES, Manifest


async def get_manifest(request: web.Request) -> web.Response:
    name, reference = repository_name(request), request.match_info["reference"]
    manifest = await request.app[REGISTRY].get_manifest(name, reference)
    if not is_digest(reference) and not _acceptable(request, manifest.media_type):
        raise ManifestUnknown(
            f"manifest {reference} is a {manifest.media_type}, which the Accept header does not list",
            detail={"mediaType": manifest.media_type, "digest": str(manifest.digest)},
        )
    return web.Response(
        body=manifest.payload,
        headers={
            "Content-Type": manifest.media_type,
            "Docker-Content-Digest": str(manifest.digest),
            "ETag": f'"{manifest.digest}"',
        },
    )


def _acceptable(request: web.Request, media_type: str) -> bool:
    """No Accept header, a wildcard, or the stored type listed. Only a tag is negotiated: a
    digest names exact bytes, so they are served whatever Accept lists (registry:2 refuses
    OCI types by digest too; no client needs that, and a 404 for a manifest that exists
    misleads)."""
    accepted = {
        part.split(";")[0].strip()
        for header in request.headers.getall("Accept", [])
        for part in header.split(",")
    } - {""}
    return not accepted or bool(accepted & {media_type, "*/*", "application/*"})


async def put_manifest(request: web.Request) -> web.Response:
    name, reference = repository_name(request), request.match_info["reference"]
    payload = await _read_limited(request, MAX_MANIFEST_BYTES)
    manifest = await request.app[REGISTRY].put_manifest(
        name, reference, payload, request.headers.get("Content-Type")
    )
    return web.Response(status=201, headers=_created_headers(request, name, manifest))


def _created_headers(request: web.Request, name: str, manifest: Manifest) -> dict[str, str]:
    path = f"/v2/{name}/manifests/{manifest.digest}"
    headers = {
        "Location": absolute_url(request, request.app[SETTINGS], path),
        "Docker-Content-Digest": str(manifest.digest),
    }
    if manifest.subject is not None:
        headers["OCI-Subject"] = str(manifest.subject.digest)
    return headers


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise ManifestTooLarge(f"manifest is larger than {limit} bytes")
    parts: list[bytes] = []
    received = 0
    async for chunk in request.content.iter_any():
        received += len(chunk)
        if received > limit:
            raise ManifestTooLarge(f"manifest is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def delete_manifest(request: web.Request) -> web.Response:
    name, reference = repository_name(request), request.match_info["reference"]
    # cargobay's extension: ?cascade=referrers deletes signatures and SBOMs with their subject
    cascade = request.query.get("cascade") == "referrers"
    await request.app[REGISTRY].delete_manifest(name, reference, cascade=cascade)
    return web.Response(status=202)
