"""Reading the typed values of a request: repository name, digest, Content-Range, pagination."""

import re

from aiohttp import web

from cargobay.registry.digests import Digest
from cargobay.registry.errors import BlobUploadInvalid
from cargobay.registry.names import validate_name
from cargobay.registry.pagination import parse_page_size

MAX_PAGE_SIZE = 1000
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def repository_name(request: web.Request) -> str:
    return validate_name(request.match_info["name"])


def path_digest(request: web.Request) -> Digest:
    return Digest.parse(request.match_info["digest"])


def content_range(request: web.Request) -> tuple[int, int] | None:
    """`(start, length)` of a chunk from `Content-Range: <start>-<end>`, or None when absent."""
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    match = _CONTENT_RANGE.match(header.strip())
    if match is None or int(match.group(2)) < int(match.group(1)):
        raise BlobUploadInvalid(f"malformed Content-Range {header[:100]!r}: expected <start>-<end>")
    start, end = int(match.group(1)), int(match.group(2))
    length = end - start + 1
    if request.content_length is not None and request.content_length != length:
        raise BlobUploadInvalid(
            f"Content-Range {header!r} announces {length} bytes but Content-Length is "
            f"{request.content_length}"
        )
    return start, length


def page_size(request: web.Request) -> int | None:
    return parse_page_size(request.query.get("n"), MAX_PAGE_SIZE)


def next_page_link(path: str, n: int | None, last: str) -> str:
    query = f"last={last}" if n is None else f"n={n}&last={last}"
    return f'<{path}?{query}>; rel="next"'
