"""`GET /v2/<name>/referrers/<digest>` (OCI 1.1): an image index of the manifests whose subject it is."""

import json

from aiohttp import web

from cargobay.http.context import REGISTRY
from cargobay.http.params import path_digest, repository_name
from cargobay.registry import mediatypes


async def list_referrers(request: web.Request) -> web.Response:
    name, subject = repository_name(request), path_digest(request)
    artifact_type = request.query.get("artifactType")
    referrers = await request.app[REGISTRY].referrers(name, subject, artifact_type)
    headers = {"Content-Type": mediatypes.OCI_INDEX}
    if referrers.filtered:
        headers["OCI-Filters-Applied"] = "artifactType"
    return web.Response(body=json.dumps(referrers.index).encode(), headers=headers)
