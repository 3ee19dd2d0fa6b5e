"""`GET /v2/<name>/tags/list` with `n`/`last` pagination and a `Link` to the next page."""

from aiohttp import web

from cargobay.http.context import REGISTRY
from cargobay.http.params import next_page_link, page_size, repository_name


async def list_tags(request: web.Request) -> web.Response:
    name, n = repository_name(request), page_size(request)
    page = await request.app[REGISTRY].list_tags(name, n, request.query.get("last"))
    headers = {}
    if page.more:
        headers["Link"] = next_page_link(f"/v2/{name}/tags/list", n, page.items[-1])
    return web.json_response({"name": name, "tags": page.items}, headers=headers)
