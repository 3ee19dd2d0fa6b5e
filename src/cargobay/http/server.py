"""Running the application: one process, or several worker processes sharing the port.

The state lives in storage (DESIGN.md), so workers need nothing from each
other: each binds the port with SO_REUSEPORT and the kernel spreads
connections over them. The first worker alone runs the periodic jobs (upload
purging, scheduled collection, retention). The parent only supervises:
it restarts a worker that dies after it served, stops when one dies at start
(the port taken, say), and passes SIGTERM and SIGINT on.
"""

import logging
import multiprocessing
import os
import signal
import socket
import ssl
import time
from types import FrameType

from aiohttp import web

from cargobay.config import ConfigError, Settings
from cargobay.http.accesslog import AccessLogger
from cargobay.http.app import create_app

log = logging.getLogger("cargobay")

READ_BUFFER = 1 << 20  # bytes aiohttp reads from a socket at a time: fewer, bigger body chunks
STARTUP_GRACE_SECONDS = 5.0  # a worker that dies sooner than this will die again
STOP_SECONDS = 30.0


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 8))


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_certificate is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_certificate, settings.tls_key)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"http.tls: cannot load certificate and key: {error}") from None
    return context


def check_listen_address(settings: Settings) -> None:
    """Bind the address once before serving, so that a taken port or an unknown host stops
    startup with one sentence naming `http.addr`, not a traceback from every worker."""
    host, port = settings.listen_host or None, settings.listen_port
    shown = f"{host or ''}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(f"http.addr: {shown}: cannot resolve the host: {error.strerror}") from None
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                raise ConfigError(f"http.addr: cannot listen on {shown}: {error.strerror}") from None


def run_server(settings: Settings, workers: int) -> int:
    """Serve until stopped; returns the exit status."""
    if workers <= 1:
        _serve(settings, primary=True, reuse_port=False)
        return 0
    return _supervise(settings, workers)


def _serve(settings: Settings, *, primary: bool, reuse_port: bool) -> None:
    web.run_app(
        create_app(settings, background_jobs=primary),
        host=settings.listen_host or None,
        port=settings.listen_port,
        ssl_context=ssl_context(settings),
        reuse_port=reuse_port,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("cargobay.access") if settings.access_log else None,
        print=None,
        handler_args={"read_bufsize": READ_BUFFER},
    )


def _worker(settings: Settings, index: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; SIGTERM stops us gracefully
    _serve(settings, primary=index == 0, reuse_port=True)


def _supervise(settings: Settings, count: int) -> int:
    context = multiprocessing.get_context("fork")
    processes: dict[int, tuple[multiprocessing.process.BaseProcess, float]] = {}
    stopping = False

    def start(index: int) -> None:
        process = context.Process(target=_worker, args=(settings, index), name=f"cargobay-worker-{index}")
        process.start()
        processes[index] = (process, time.monotonic())

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(count):
        start(index)
    log.info("started %d worker processes", count)
    status = 0
    while not stopping:
        time.sleep(0.2)
        for index, (process, started) in list(processes.items()):
            if process.is_alive() or stopping:
                continue
            if time.monotonic() - started < STARTUP_GRACE_SECONDS:
                log.error("worker %d exited at start with %s; stopping", index, process.exitcode)
                stopping, status = True, 1
                break
            log.error("worker %d exited with %s; starting it again", index, process.exitcode)
            start(index)
    for process, _ in processes.values():
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process, _ in processes.values():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
    return status
