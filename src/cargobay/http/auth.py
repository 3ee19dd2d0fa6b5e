"""HTTP basic authentication in front of every route when `auth.htpasswd` is configured."""

import base64
import binascii

from aiohttp import web
from aiohttp.typedefs import Middleware

from cargobay.auth.htpasswd import HtpasswdAuthenticator
from cargobay.http.context import USER
from cargobay.http.errors import Handler, error_response
from cargobay.registry.errors import Unauthorized


def basic_auth_middleware(authenticator: HtpasswdAuthenticator, realm: str) -> Middleware:
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        credentials = _basic_credentials(request.headers.get("Authorization", ""))
        if credentials is None:
            return error_response(Unauthorized(), headers=challenge)
        user, password = credentials
        if not await authenticator.verify(user, password):
            return error_response(Unauthorized("invalid username or password"), headers=challenge)
        request[USER] = user
        return await handler(request)

    return authenticate


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep and user else None
