"""`GET /v2/`: the version check every client starts with (authentication happens before it)."""

from aiohttp import web


async def api_version_check(request: web.Request) -> web.Response:
    return web.json_response({})
