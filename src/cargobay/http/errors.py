"""The one table from domain errors to HTTP statuses, and the middleware that applies it.

Every failure under /v2/ leaves as the spec's JSON body
`{"errors": [{"code", "message", "detail"}]}`; an unexpected exception is
logged with its traceback and reaches the client as a bare 500 UNKNOWN.
"""

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from cargobay.registry import errors

log = logging.getLogger(__name__)

STATUS: dict[type[errors.RegistryError], int] = {
    errors.BlobUnknown: 404,
    errors.BlobUploadInvalid: 400,
    errors.BlobUploadUnknown: 404,
    errors.RangeInvalid: 416,
    errors.DigestInvalid: 400,
    errors.ManifestBlobUnknown: 400,
    errors.ManifestInvalid: 400,
    errors.ManifestUnknown: 404,
    errors.ManifestTooLarge: 413,
    errors.NameInvalid: 400,
    errors.NameUnknown: 404,
    errors.TagInvalid: 400,
    errors.PaginationNumberInvalid: 400,
    errors.SizeInvalid: 400,
    errors.ParameterInvalid: 400,
    errors.Unauthorized: 401,
    errors.Denied: 403,
    errors.Unsupported: 405,
    errors.DeleteDisabled: 405,
}


class RouteUnknown(errors.Unsupported):
    default_message = "no such endpoint"


STATUS[RouteUnknown] = 404


def status_of(error: errors.RegistryError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(
    error: errors.RegistryError, *, status: int | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"errors": [{"code": error.code, "message": error.message, "detail": error.detail}]}
    return web.Response(
        status=status or status_of(error),
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def _headers_for(error: errors.RegistryError) -> dict[str, str] | None:
    """A refused chunk tells the client where the upload really ends, so it can resume."""
    if isinstance(error, errors.RangeInvalid):
        return {"Range": upload_range(error.uploaded)}
    return None


def upload_range(size: int) -> str:
    """The `Range` header of an upload holding `size` bytes: `0-<last byte>`, `0-0` when empty."""
    return f"0-{max(size - 1, 0)}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.RegistryError as error:
        log.info(
            "%s %s: %s %s%s",
            request.method,
            request.path,
            error.code,
            error.message,
            f" ({error.detail})" if error.detail else "",
        )
        return error_response(error, headers=_headers_for(error))
    except web.HTTPNotFound:
        return error_response(RouteUnknown(f"no endpoint at {request.path[:200]}"))
    except web.HTTPMethodNotAllowed:
        return error_response(errors.Unsupported(f"{request.method} is not allowed here"))
    except (web.HTTPException, ConnectionError):
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(errors.RegistryError("internal server error"), status=500)
