"""Absolute URLs for `Location` and `Link` headers, right behind a reverse proxy too.

Order of precedence, as registry:2: `http.relativeurls` gives bare paths;
`http.host` fixes the base URL; otherwise the first `X-Forwarded-Proto` and
`X-Forwarded-Host` a proxy set, else the request's own scheme and Host.
"""

from aiohttp import web

from cargobay.config import Settings


def absolute_url(request: web.Request, settings: Settings, path: str) -> str:
    if settings.relative_urls:
        return path
    if settings.public_url:
        return settings.public_url + path
    scheme = _first(request.headers.get("X-Forwarded-Proto")) or request.scheme
    host = _first(request.headers.get("X-Forwarded-Host")) or request.host
    return f"{scheme}://{host}{path}"


def _first(value: str | None) -> str | None:
    return value.split(",")[0].strip() or None if value else None
