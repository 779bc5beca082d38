"""Calls into a driver's contract methods: awaited when it is async, in opa's threads when sync.

Sync calls run in a pool of opa's own rather than asyncio's default executor: asyncio.run()
waits for that one at exit without a bound, so a hung connect would outlive its timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opa.drivers import Driver, driver_is_async

_SYNC_CALLS = ThreadPoolExecutor(thread_name_prefix="opa-driver")


def _renew_sync_calls() -> None:
    # A forked child inherits the pool but not its threads: work given to it would never run.
    global _SYNC_CALLS
    _SYNC_CALLS = ThreadPoolExecutor(thread_name_prefix="opa-driver")


os.register_at_fork(after_in_child=_renew_sync_calls)


async def call_driver(driver: Driver, method: Callable[[], Any]) -> Any:
    """Run *method* of *driver* to its end without blocking the event loop."""
    if driver_is_async(type(driver)):
        result = method()
        return await result if inspect.isawaitable(result) else result
    return await asyncio.get_running_loop().run_in_executor(_SYNC_CALLS, method)


def start_driver_call(driver: Driver, method: Callable[[], Any]) -> asyncio.Future[Any]:
    """*method* of *driver* started on the running loop, as a future the caller may outwait.

    A sync call cannot be stopped once its thread runs, so a caller that gives up on it
    should keep the future rather than start the same call again in another thread.
    """
    if driver_is_async(type(driver)):
        future: asyncio.Future[Any] = asyncio.ensure_future(call_driver(driver, method))
    else:
        future = asyncio.get_running_loop().run_in_executor(_SYNC_CALLS, method)
    # Read the outcome even when nobody waits any more, so asyncio never logs it as lost.
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future


def ping_failure(error: BaseException | None, timeout: float) -> str:
    """Why a ping failed, for ``/health`` and logs: the exception's type, never its text,
    which may carry an address. *error* None (or a TimeoutError) means no answer in time."""
    if error is None or isinstance(error, TimeoutError):
        return f"no answer to a ping within {timeout:g}s"
    return f"ping failed ({type(error).__name__})"
