"""The registry API calls the workloads make, each one checked as a client would check it.

A benchmark that does not verify measures how fast a server can be wrong, so every
call checks the status, the headers a client relies on (`Location`, `Range`,
`Docker-Content-Digest`, `Content-Length`) and, for everything read, the sha256 of
the bytes that arrived. Any mismatch raises `VerifyError`; the workloads count it.

Blob uploads follow the three shapes clients use: monolithic (POST, then PUT with
the body), chunked (PATCH pieces with `Content-Range`, then an empty PUT), and
streamed as `docker push` does (one PATCH without `Content-Range`, then PUT).
"""

import hashlib
from collections.abc import AsyncIterator

import aiohttp
from yarl import URL

from bench.content import DOCKER_MANIFEST, MANIFEST_ACCEPT, Blob

READ_BYTES = 4 << 20  # the client's read buffer: big reads, few wakeups at GB/s


class VerifyError(Exception):
    """A response that is not what the API promises (status, header or bytes)."""


def new_session(
    credentials: tuple[str, str] | None, timeout: float, connections: int
) -> aiohttp.ClientSession:
    """One client: its own connections (keep-alive), basic auth on every request as docker sends it."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, force_close=False),
        auth=aiohttp.BasicAuth(*credentials) if credentials else None,
        timeout=aiohttp.ClientTimeout(total=timeout),
        auto_decompress=False,
        read_bufsize=READ_BYTES,
        trust_env=False,
    )


def _expect(response: aiohttp.ClientResponse, status: int, what: str) -> None:
    if response.status != status:
        raise VerifyError(f"{what}: HTTP {response.status}, expected {status}")


def _expect_header(response: aiohttp.ClientResponse, name: str, value: str, what: str) -> None:
    got = response.headers.get(name)
    if got != value:
        raise VerifyError(f"{what}: {name} is {got!r}, expected {value!r}")


async def _body(blob: Blob, start: int = 0, end: int | None = None) -> AsyncIterator[memoryview]:
    for piece in blob.pieces(start, end):
        yield piece


class Registry:
    """The API of one registry through one client session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base = URL(base_url)

    def _url(self, path: str) -> URL:
        return self.base.join(URL(path))

    def _location(self, response: aiohttp.ClientResponse, what: str) -> URL:
        location = response.headers.get("Location")
        if not location:
            raise VerifyError(f"{what}: no Location header")
        return self.base.join(URL(location))

    # -- blobs, read side ------------------------------------------------------------------------

    async def head_blob(self, repo: str, digest: str, size: int) -> None:
        what = f"HEAD blob {digest[:19]}"
        async with self.session.head(self._url(f"/v2/{repo}/blobs/{digest}")) as response:
            _expect(response, 200, what)
            _expect_header(response, "Docker-Content-Digest", digest, what)
            _expect_header(response, "Content-Length", str(size), what)

    async def blob_missing(self, repo: str, digest: str) -> bool:
        """HEAD before upload, as docker does: True on 404, False on 200."""
        async with self.session.head(self._url(f"/v2/{repo}/blobs/{digest}")) as response:
            if response.status not in (200, 404):
                raise VerifyError(f"HEAD blob before push: HTTP {response.status}")
            return response.status == 404

    async def pull_blob(self, repo: str, digest: str, size: int) -> int:
        """GET a blob; its bytes must hash to `digest`. Returns the bytes received."""
        what = f"GET blob {digest[:19]}"
        hasher = hashlib.sha256()
        received = 0
        async with self.session.get(self._url(f"/v2/{repo}/blobs/{digest}")) as response:
            _expect(response, 200, what)
            _expect_header(response, "Docker-Content-Digest", digest, what)
            async for data in response.content.iter_chunked(READ_BYTES):
                hasher.update(data)
                received += len(data)
        if received != size:
            raise VerifyError(f"{what}: {received} bytes, expected {size}")
        if "sha256:" + hasher.hexdigest() != digest:
            raise VerifyError(f"{what}: the bytes received do not hash to the digest")
        return received

    # -- blobs, write side -----------------------------------------------------------------------

    async def start_upload(self, repo: str) -> URL:
        what = "POST upload"
        async with self.session.post(
            self._url(f"/v2/{repo}/blobs/uploads/"), headers={"Content-Length": "0"}
        ) as response:
            _expect(response, 202, what)
            return self._location(response, what)

    async def _finish(self, location: URL, blob: Blob, body: bool) -> None:
        what = f"PUT upload {blob.digest[:19]}"
        url = location.update_query(digest=blob.digest)
        if body:
            headers = {"Content-Length": str(blob.size), "Content-Type": "application/octet-stream"}
            data: AsyncIterator[memoryview] | None = _body(blob)
        else:
            headers, data = {"Content-Length": "0"}, None
        async with self.session.put(url, data=data, headers=headers) as response:
            _expect(response, 201, what)
            _expect_header(response, "Docker-Content-Digest", blob.digest, what)
            self._location(response, what)

    async def push_monolithic(self, repo: str, blob: Blob) -> None:
        """POST, then PUT `?digest=` with the whole body."""
        await self._finish(await self.start_upload(repo), blob, body=True)

    async def push_chunked(self, repo: str, blob: Blob, chunk: int) -> None:
        """POST, PATCH `chunk`-sized pieces with `Content-Range`, then an empty PUT."""
        location = await self.start_upload(repo)
        for start in range(0, blob.size, chunk):
            end = min(blob.size, start + chunk)
            what = f"PATCH {start}-{end - 1} of {blob.digest[:19]}"
            headers = {
                "Content-Range": f"{start}-{end - 1}",
                "Content-Length": str(end - start),
                "Content-Type": "application/octet-stream",
            }
            async with self.session.patch(
                location, data=_body(blob, start, end), headers=headers
            ) as response:
                _expect(response, 202, what)
                _expect_header(response, "Range", f"0-{end - 1}", what)
                location = self._location(response, what)
        await self._finish(location, blob, body=False)

    async def push_streamed(self, repo: str, blob: Blob) -> None:
        """docker push's shape: HEAD, POST, one PATCH with the whole body, empty PUT."""
        if not await self.blob_missing(repo, blob.digest):
            return
        location = await self.start_upload(repo)
        what = f"PATCH stream {blob.digest[:19]}"
        headers = {"Content-Length": str(blob.size), "Content-Type": "application/octet-stream"}
        async with self.session.patch(location, data=_body(blob), headers=headers) as response:
            _expect(response, 202, what)
            _expect_header(response, "Range", f"0-{blob.size - 1}", what)
            location = self._location(response, what)
        await self._finish(location, blob, body=False)

    # -- manifests -------------------------------------------------------------------------------

    async def put_manifest(self, repo: str, reference: str, manifest: bytes, digest: str) -> None:
        what = f"PUT manifest {repo}:{reference}"
        headers = {"Content-Type": DOCKER_MANIFEST}
        async with self.session.put(
            self._url(f"/v2/{repo}/manifests/{reference}"), data=manifest, headers=headers
        ) as response:
            _expect(response, 201, what)
            _expect_header(response, "Docker-Content-Digest", digest, what)

    async def get_manifest(self, repo: str, reference: str, digest: str) -> bytes:
        """GET a manifest by tag; its bytes must hash to `digest`."""
        what = f"GET manifest {repo}:{reference}"
        async with self.session.get(
            self._url(f"/v2/{repo}/manifests/{reference}"), headers={"Accept": MANIFEST_ACCEPT}
        ) as response:
            _expect(response, 200, what)
            _expect_header(response, "Docker-Content-Digest", digest, what)
            body = await response.read()
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise VerifyError(f"{what}: the bytes received do not hash to {digest}")
        return body

    async def head_manifest(self, repo: str, reference: str, digest: str, size: int) -> None:
        what = f"HEAD manifest {repo}:{reference}"
        async with self.session.head(
            self._url(f"/v2/{repo}/manifests/{reference}"), headers={"Accept": MANIFEST_ACCEPT}
        ) as response:
            _expect(response, 200, what)
            _expect_header(response, "Docker-Content-Digest", digest, what)
            _expect_header(response, "Content-Length", str(size), what)
