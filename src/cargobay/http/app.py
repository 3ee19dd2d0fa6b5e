"""The aiohttp application: routes, middlewares, and the upload purging task."""

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from cargobay.auth.htpasswd import HtpasswdAuthenticator
from cargobay.config import Settings
from cargobay.http import admin, base, blobs, catalog, manifests, referrers, tags, uploads
from cargobay.http.auth import basic_auth_middleware
from cargobay.http.context import REGISTRY, SETTINGS
from cargobay.http.errors import errors_middleware
from cargobay.registry.gc import collect_garbage
from cargobay.registry.retention import apply_retention, plan_retention
from cargobay.registry.service import Registry
from cargobay.storage.driver import StorageDriver
from cargobay.storage.filesystem import FilesystemDriver
from cargobay.storage.memory import MemoryDriver

log = logging.getLogger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]
NAME = "{name:.+}"  # checked against the spec's grammar by the handler, to answer NAME_INVALID


def create_app(
    settings: Settings, driver: StorageDriver | None = None, *, background_jobs: bool = True
) -> web.Application:
    """The application; `background_jobs` runs the periodic jobs (one worker does)."""
    middlewares: list[Middleware] = [errors_middleware]
    if settings.htpasswd is not None:
        authenticator = HtpasswdAuthenticator(settings.htpasswd.path)
        middlewares.append(basic_auth_middleware(authenticator, settings.htpasswd.realm))
    app = web.Application(middlewares=middlewares)
    app[SETTINGS] = settings
    app[REGISTRY] = Registry(driver or make_driver(settings), delete_enabled=settings.delete_enabled)
    _add_routes(app.router)
    app.on_response_prepare.append(_common_headers)
    if background_jobs:
        _add_background_jobs(app, settings)
    return app


def _add_background_jobs(app: web.Application, settings: Settings) -> None:
    if settings.upload_purging.enabled:
        app.cleanup_ctx.append(_every(settings.upload_purging.interval, _purge_uploads))
    if settings.collection.interval is not None:
        app.cleanup_ctx.append(_every(settings.collection.interval, _collect_garbage))
    if settings.retention.interval is not None:
        app.cleanup_ctx.append(_every(settings.retention.interval, _apply_retention))


def make_driver(settings: Settings) -> StorageDriver:
    if settings.storage_driver == "inmemory":
        return MemoryDriver()
    return FilesystemDriver(settings.root_directory)


def _add_routes(router: web.UrlDispatcher) -> None:
    # Order matters: the upload and list routes must win over the blob and manifest ones.
    router.add_get("/v2/", base.api_version_check)
    router.add_get("/v2/_catalog", catalog.list_repositories)
    router.add_get(f"/v2/{NAME}/tags/list", tags.list_tags)
    router.add_get(f"/v2/{NAME}/referrers/{{digest}}", referrers.list_referrers)
    router.add_post(f"/v2/{NAME}/blobs/uploads/", uploads.start_upload)
    upload = f"/v2/{NAME}/blobs/uploads/{{upload_id}}"
    router.add_patch(upload, uploads.patch_upload)
    router.add_put(upload, uploads.finish_upload)
    router.add_get(upload, uploads.upload_status)
    router.add_delete(upload, uploads.cancel_upload)
    blob = f"/v2/{NAME}/blobs/{{digest}}"
    router.add_get(blob, blobs.get_blob)  # HEAD too
    router.add_delete(blob, blobs.delete_blob)
    manifest = f"/v2/{NAME}/manifests/{{reference}}"
    router.add_get(manifest, manifests.get_manifest)  # HEAD too
    router.add_put(manifest, manifests.put_manifest)
    router.add_delete(manifest, manifests.delete_manifest)
    router.add_post("/admin/gc", admin.collect_garbage)


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Docker-Distribution-API-Version"] = "registry/2.0"
    for name, value in request.app[SETTINGS].headers:
        response.headers.add(name, value)


def _every(interval: datetime.timedelta, job: Callable[[web.Application], Awaitable[None]]) -> CleanupContext:
    """Run `job` at startup and then every `interval` while the server runs; a failure is
    logged and the next run comes as planned."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                try:
                    await job(app)
                except Exception:
                    log.exception("%s failed; it runs again in %s", job.__name__.strip("_"), interval)
                await asyncio.sleep(interval.total_seconds())

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


async def _purge_uploads(app: web.Application) -> None:
    """Remove abandoned uploads as registry:2's `storage.maintenance.uploadpurging` does."""
    policy = app[SETTINGS].upload_purging
    purged = await app[REGISTRY].uploads.purge(policy.age, dry_run=policy.dry_run)
    if purged:
        verb = "would purge" if policy.dry_run else "purged"
        log.info("%s %d abandoned uploads: %s", verb, len(purged), ", ".join(purged))


async def _apply_retention(app: web.Application) -> None:
    driver = app[REGISTRY].driver
    planned = await plan_retention(driver, app[SETTINGS].retention.rules, time.time())
    deleted = await apply_retention(driver, planned)
    if deleted:
        log.info("scheduled retention deleted %d tags", len(deleted))


async def _collect_garbage(app: web.Application) -> None:
    schedule = app[SETTINGS].collection
    report = await collect_garbage(
        app[REGISTRY].driver, grace=schedule.grace, delete_untagged=schedule.delete_untagged
    )
    log.info(
        "scheduled garbage collection removed %d manifests and %d blobs (%d bytes)",
        len(report.manifests),
        len(report.blobs),
        report.freed_bytes,
    )
