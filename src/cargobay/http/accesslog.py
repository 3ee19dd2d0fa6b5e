"""One line per request: who asked what, the answer, how many body bytes, how long it took."""

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from cargobay.http.context import USER


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        # body_length misses what sendfile wrote, so the declared length is the better count
        if request.method == "HEAD":
            sent = 0
        else:
            sent = response.content_length if response.content_length is not None else response.body_length
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
