"""The one door to blocking work.

bcrypt checks, file system calls on big files and hashing of big buffers must
never run on the event loop. Every such call goes through `run_blocking`, so a
reader can grep for each place that leaves the loop.
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# hashlib, bcrypt and file I/O release the GIL, so a few threads use every core.
_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="cargobay-blocking")


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn` on the blocking-work thread pool and wait for it without blocking the loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(fn, *args, **kwargs))
