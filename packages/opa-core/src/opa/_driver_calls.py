"""Calls into a driver's contract methods: awaited when it is async, in opa's threads when sync.

Sync calls run in a pool of opa's own rather than asyncio's default executor: asyncio.run()
waits for that one at exit without a bound, so a hung connect would outlive its timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from opa._drivers import Driver, driver_is_async
from opa._extensions import notify

if TYPE_CHECKING:
    from opa._components import Component

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


class Pings:
    """Pings components' drivers within one bound: ``/health`` and the breaker use the same.

    A sync ping cannot be stopped once its thread runs, so while one is running every
    caller for that component waits on it instead of starting another: a stalled backend
    holds one of opa's driver threads however often ``/health`` is polled, and connects
    never queue behind a pile of stuck pings. An async ping is cancelled at the bound.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._running: dict[str, asyncio.Future[Any]] = {}

    async def ping(self, name: str, driver: Driver) -> str | None:
        """None when component *name*'s *driver* answers within the bound, else why not."""
        is_async = driver_is_async(type(driver))
        try:
            ping = (
                start_driver_call(driver, driver.ping)
                if is_async
                else self._sync_ping(name, driver)
            )
        except Exception as exc:  # the driver threads are gone (interpreter exit), say
            return ping_failure(exc, self.timeout)
        try:
            done, _ = await asyncio.wait({ping}, timeout=self.timeout)
        finally:
            # Past the bound, or cancelled (shutdown): an async ping must not outlive either.
            if is_async and not ping.done():
                ping.cancel()
        if not done:
            return ping_failure(None, self.timeout)
        if ping.cancelled():
            return "ping cancelled"
        error = ping.exception()
        return None if error is None else ping_failure(error, self.timeout)

    async def ping_component(self, component: Component, driver: Driver) -> str | None:
        """:meth:`ping` for *component*, told to the extensions with the time it took."""
        start = time.perf_counter()
        problem = await self.ping(component.name, driver)
        elapsed = time.perf_counter() - start
        notify("opa_component_pinged", component=component, elapsed=elapsed, problem=problem)
        return problem

    def _sync_ping(self, name: str, driver: Driver) -> asyncio.Future[Any]:
        running = self._running.get(name)
        if running is not None and not running.done():
            return running
        ping = start_driver_call(driver, driver.ping)
        self._running[name] = ping
        ping.add_done_callback(lambda done: self._forget(name, done))
        return ping

    def _forget(self, name: str, ping: asyncio.Future[Any]) -> None:
        if self._running.get(name) is ping:
            del self._running[name]

    def clear(self) -> None:
        """Forget the running pings, at shutdown: their futures belong to the closing loop."""
        self._running.clear()


def ping_failure(error: BaseException | None, timeout: float) -> str:
    """Why a ping failed, for ``/health`` and logs: the exception's type, never its text,
    which may carry an address. *error* None (or a TimeoutError) means no answer in time."""
    if error is None or isinstance(error, TimeoutError):
        return f"no answer to a ping within {timeout:g}s"
    return f"ping failed ({type(error).__name__})"
