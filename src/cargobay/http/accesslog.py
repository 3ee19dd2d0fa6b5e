"""One line per request: who asked what, the answer, how many bytes, how long it took."""

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from cargobay.http.context import USER


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        sent = response.body_length or response.content_length or 0
        self.logger.info(
            '%s "%s %s" %d %d %.1fms user=%s',
            request.remote,
            request.method,
            request.path_qs,
            response.status,
            sent,
            time * 1000,
            request.get(USER, "-"),
        )
