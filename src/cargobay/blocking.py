"""The two doors to blocking work.

bcrypt checks, file system calls on big files and hashing of big buffers must
never run on the event loop. Every such call goes through one of two functions,
so a reader can grep for each place that leaves the loop:

- `run_blocking`: the short calls a request waits on (a stat, a small read, a
  bcrypt check).
- `run_bulk`: the bytes of uploads, hashed and written. Its threads run at a
  lower CPU priority, so that when the CPU is short, a push's gigabytes wait
  rather than the pulls and the small requests that clients sit waiting on;
  when nothing else wants the CPU, pushes get all of it.
"""

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)

BULK_NICENESS = 10  # added to the process's nice value for the bulk threads (Linux: per thread)


def _lower_thread_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BULK_NICENESS)
    except (AttributeError, OSError) as error:  # not Linux, or not allowed: run at normal priority
        log.debug("bulk thread keeps its priority: %s", error)


# hashlib, bcrypt and file I/O release the GIL, so a few threads use every core.
_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="cargobay-blocking")
_bulk_executor = ThreadPoolExecutor(
    max_workers=16, thread_name_prefix="cargobay-bulk", initializer=_lower_thread_priority
)


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn` on the blocking-work thread pool and wait for it without blocking the loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(fn, *args, **kwargs))


async def run_bulk(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn`, work on the bytes of an upload, on the lower-priority bulk thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_bulk_executor, functools.partial(fn, *args, **kwargs))
