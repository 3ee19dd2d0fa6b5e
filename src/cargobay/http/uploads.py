"""`/v2/<name>/blobs/uploads/`: starting, feeding, finishing and cancelling blob uploads.

Every flavour clients use: monolithic `POST ?digest=`, cross-repository
mount, chunked `PATCH` with `Content-Range`, streamed `PATCH` without it
(`docker push`), and the final `PUT ?digest=` with or without a last chunk.
"""

import contextlib

from aiohttp import web

from cargobay.http.context import REGISTRY, SETTINGS
from cargobay.http.errors import upload_range
from cargobay.http.params import content_range, repository_name
from cargobay.http.urls import absolute_url
from cargobay.registry.blobs import Blob
from cargobay.registry.digests import Digest
from cargobay.registry.errors import BlobUnknown, DigestInvalid, NameInvalid, RegistryError
from cargobay.registry.names import validate_name
from cargobay.registry.uploads import UploadStatus


async def start_upload(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    name = repository_name(request)
    mount, source = request.query.get("mount"), request.query.get("from")
    if mount is not None and source is not None:
        try:
            blob = await registry.mount_blob(name, validate_name(source), Digest.parse(mount))
        except (BlobUnknown, NameInvalid, DigestInvalid):
            pass  # nothing to mount: the client uploads it instead (202 below), as the spec and registry:2 do
        else:
            return _blob_created(request, name, blob)
    if "digest" in request.query:
        return await _monolithic_upload(request, name, _query_digest(request))
    return _upload_accepted(request, name, await registry.start_upload(name))


async def _monolithic_upload(request: web.Request, name: str, digest: Digest) -> web.Response:
    registry = request.app[REGISTRY]
    session = await registry.start_upload(name)
    try:
        await registry.uploads.append(name, session.upload_id, request.content.iter_any())
        blob = await registry.commit_upload(name, session.upload_id, digest)
    except BaseException:
        await _cancel_quietly(request, name, session.upload_id)
        raise
    return _blob_created(request, name, blob)


async def patch_upload(request: web.Request) -> web.Response:
    name, upload_id = repository_name(request), request.match_info["upload_id"]
    return _upload_accepted(request, name, await _append_body(request, name, upload_id))


async def finish_upload(request: web.Request) -> web.Response:
    name, upload_id = repository_name(request), request.match_info["upload_id"]
    digest = _query_digest(request)
    if request.body_exists:
        await _append_body(request, name, upload_id)
    return _blob_created(request, name, await request.app[REGISTRY].commit_upload(name, upload_id, digest))


async def upload_status(request: web.Request) -> web.Response:
    name, upload_id = repository_name(request), request.match_info["upload_id"]
    status = await request.app[REGISTRY].uploads.status(name, upload_id)
    return web.Response(status=204, headers=_upload_headers(request, name, status))


async def cancel_upload(request: web.Request) -> web.Response:
    name, upload_id = repository_name(request), request.match_info["upload_id"]
    await request.app[REGISTRY].uploads.cancel(name, upload_id)
    return web.Response(status=204)


async def _append_body(request: web.Request, name: str, upload_id: str) -> UploadStatus:
    """Append the request body, at the offset its Content-Range names when it names one."""
    chunk_range = content_range(request)
    start, length = chunk_range if chunk_range is not None else (None, None)
    return await request.app[REGISTRY].uploads.append(
        name, upload_id, request.content.iter_any(), start=start, length=length
    )


def _query_digest(request: web.Request) -> Digest:
    text = request.query.get("digest")
    if not text:
        raise DigestInvalid("the digest query parameter is required to finish an upload")
    return Digest.parse(text)


def _upload_headers(request: web.Request, name: str, status: UploadStatus) -> dict[str, str]:
    path = f"/v2/{name}/blobs/uploads/{status.upload_id}"
    return {
        "Location": absolute_url(request, request.app[SETTINGS], path),
        "Docker-Upload-UUID": status.upload_id,
        "Range": upload_range(status.size),
    }


def _upload_accepted(request: web.Request, name: str, status: UploadStatus) -> web.Response:
    return web.Response(status=202, headers=_upload_headers(request, name, status))


def _blob_created(request: web.Request, name: str, blob: Blob) -> web.Response:
    location = absolute_url(request, request.app[SETTINGS], f"/v2/{name}/blobs/{blob.digest}")
    return web.Response(status=201, headers={"Location": location, "Docker-Content-Digest": str(blob.digest)})


async def _cancel_quietly(request: web.Request, name: str, upload_id: str) -> None:
    # Already gone when commit cancelled a session whose digest did not match.
    with contextlib.suppress(RegistryError):
        await request.app[REGISTRY].uploads.cancel(name, upload_id)
