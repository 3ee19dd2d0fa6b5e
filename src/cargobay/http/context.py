"""Typed keys for what the application shares with its handlers."""

from aiohttp import web

from cargobay.config import Settings
from cargobay.registry.service import Registry

REGISTRY = web.AppKey("registry", Registry)
SETTINGS = web.AppKey("settings", Settings)
USER = "cargobay.user"  # request key: the authenticated user name
