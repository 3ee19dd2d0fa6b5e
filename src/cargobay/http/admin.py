"""`POST /admin/gc`: a garbage collection on demand, for the users `cargobay.admins` names.

Query: `dryrun=true`, `grace=<duration>` and `deleteuntagged=true|false`, by default
the config's `cargobay.gc.grace` and `cargobay.gc.deleteuntagged`. Answers the report
as JSON. Only admins: a collection with no grace takes the layers of pushes still
under way, which no CI account should be able to do to the others. A registry without
auth refuses it: an open registry must not let anyone on the network start a
collection (`cargobay gc` on the host does the same work).
"""

import datetime

from aiohttp import web

from cargobay.durations import parse_duration
from cargobay.http.context import REGISTRY, SETTINGS, USER
from cargobay.registry import gc
from cargobay.registry.errors import Denied, ParameterInvalid


async def collect_garbage(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if settings.htpasswd is None:
        raise Denied("/admin/gc needs auth.htpasswd; without auth, run `cargobay gc` on the host")
    if request[USER] not in settings.admins:
        raise Denied(f"user {request[USER]!r} is not listed in cargobay.admins")
    report = await gc.collect_garbage(
        request.app[REGISTRY].driver,
        grace=_grace(request.query.get("grace"), settings.collection.grace),
        delete_untagged=_flag(request, "deleteuntagged", settings.collection.delete_untagged),
        dry_run=_flag(request, "dryrun", False),
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


def _flag(request: web.Request, name: str, default: bool) -> bool:
    text = request.query.get(name)
    return default if text is None else text.lower() in ("1", "true", "yes")


def _grace(text: str | None, default: datetime.timedelta) -> datetime.timedelta:
    if text is None:
        return default
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ParameterInvalid(f"grace: {error}") from None
