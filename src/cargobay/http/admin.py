"""`POST /admin/gc`: a garbage collection on demand, behind the same authentication as /v2/.

Query: `dryrun=true`, `grace=<duration>` (default 1h), `deleteuntagged=true`.
Answers the report as JSON. Every authenticated user may call it until
per-repository access rules name admins. A registry without auth refuses it: an open
registry must not let anyone on the network start a collection (`cargobay gc` on the
host does the same work).
"""

import datetime

from aiohttp import web

from cargobay.durations import parse_duration
from cargobay.http.context import REGISTRY, SETTINGS
from cargobay.registry import gc
from cargobay.registry.errors import Denied, ParameterInvalid


async def collect_garbage(request: web.Request) -> web.Response:
    if request.app[SETTINGS].htpasswd is None:
        raise Denied("/admin/gc needs auth.htpasswd; without auth, run `cargobay gc` on the host")
    report = await gc.collect_garbage(
        request.app[REGISTRY].driver,
        grace=_grace(request.query.get("grace")),
        delete_untagged=_flag(request, "deleteuntagged"),
        dry_run=_flag(request, "dryrun"),
    )
    return web.json_response(
        {
            "dryRun": report.dry_run,
            "manifests": [f"{name}@{digest}" for name, digest in report.manifests],
            "blobs": [{"digest": str(digest), "size": size} for digest, size in report.blobs],
            "repositories": report.repositories,
            "freedBytes": report.freed_bytes,
            "keptBlobs": report.kept_blobs,
        }
    )


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() in ("1", "true", "yes")


def _grace(text: str | None) -> datetime.timedelta:
    if text is None:
        return gc.DEFAULT_GRACE
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ParameterInvalid(f"grace: {error}") from None
