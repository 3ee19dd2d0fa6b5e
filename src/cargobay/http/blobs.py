"""`GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

On the filesystem the bytes leave through the kernel's sendfile
(`web.FileResponse`, which also answers `Range` with 206 and 416); other
drivers stream them in chunks.
"""

from aiohttp import web

from cargobay.http.context import REGISTRY
from cargobay.http.params import path_digest, repository_name
from cargobay.registry.blobs import Blob
from cargobay.registry.service import Registry

# The bytes behind a digest never change, so a cache may keep them; but whether this
# repository still has them is the registry's to say: a cached "yes" to HEAD after a
# collection would make a client skip an upload, and its manifest push would fail.
IMMUTABLE = "max-age=31536000"
ASK_AGAIN = "no-cache"


async def get_blob(request: web.Request) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    name, digest = repository_name(request), path_digest(request)
    if request.method == "HEAD":
        blob = await registry.check_blob(name, digest)
    else:
        blob = await registry.blobs.stat(name, digest)
    headers = {
        "Docker-Content-Digest": str(blob.digest),
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Cache-Control": ASK_AGAIN if request.method == "HEAD" else IMMUTABLE,
        "ETag": f'"{blob.digest}"',
    }
    if request.method == "HEAD":  # the size is all a client asks: no file to open
        headers["Content-Length"] = str(blob.size)
        return web.Response(headers=headers)
    local = registry.blobs.local_path(blob.digest)
    if local is not None:
        return web.FileResponse(local, headers=headers)
    return await _stream_blob(request, registry, blob, headers)


async def _stream_blob(
    request: web.Request, registry: Registry, blob: Blob, headers: dict[str, str]
) -> web.StreamResponse:
    try:
        wanted = request.http_range
    except ValueError:
        wanted = slice(None, None)
    start, stop = wanted.start, wanted.stop
    if start is None and stop is None:
        offset, length, status = 0, blob.size, 200
    else:
        if start is None:  # a suffix range: the last `-stop`... bytes
            start = max(blob.size + stop, 0)
            stop = None
        stop = blob.size if stop is None else min(stop, blob.size)
        if start >= blob.size or start >= stop:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{blob.size}"})
        offset, length, status = start, stop - start, 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{blob.size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in registry.blobs.read(blob.digest, offset, length):
            await response.write(chunk)
    await response.write_eof()
    return response


async def delete_blob(request: web.Request) -> web.Response:
    await request.app[REGISTRY].delete_blob(repository_name(request), path_digest(request))
    return web.Response(status=202)
