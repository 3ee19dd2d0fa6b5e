"""`GET /v2/_catalog`: every repository, with `n`/`last` pagination and a `Link` header."""

from aiohttp import web

from cargobay.http.context import REGISTRY
from cargobay.http.params import MAX_PAGE_SIZE, next_page_link, page_size

DEFAULT_PAGE_SIZE = 100  # registry:2's default page


async def list_repositories(request: web.Request) -> web.Response:
    n = page_size(request)
    n = DEFAULT_PAGE_SIZE if n is None else min(n, MAX_PAGE_SIZE)
    page = await request.app[REGISTRY].catalog(n, request.query.get("last"))
    headers = {}
    if page.more:
        headers["Link"] = next_page_link("/v2/_catalog", n, page.items[-1])
    return web.json_response({"repositories": page.items}, headers=headers)
