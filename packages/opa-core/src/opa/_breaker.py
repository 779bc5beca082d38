"""The component breaker: a backend that fails while serving is marked down, then pinged back.

Without it, every request to a stalled backend waits out the driver's socket timeout. With
it, the first outage error marks the component down, and ``get_instance`` answers 503 at
once. One task per component then pings it (each ping bounded by ``HEALTH_TIMEOUT``), at
once and then with a growing pause, until the backend answers; the component is then served
again, without a restart. A passing error thus costs a few milliseconds of 503s.

An outage error is put down to a component when the error's traceback holds that
component's instance (the route's variable, the client's own ``self``). When it holds none,
as when code kept a sub-object of the client, every component whose driver counts the
error as an outage (``is_unavailable``) is pinged first and marked down only if the ping
fails too: two Redis components both raise redis' ConnectionError, and the healthy one must
stay up. A driver whose backend is several nodes says which errors may leave the others
serving (``is_partial_outage``): those are pinged first too, so one dead node of a cluster
does not turn the requests for the live ones into 503s. It all runs on the serving event
loop: a worker or a shell has no breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opa._driver_calls import Pings
from opa._extensions import notify
from opa._log import log

if TYPE_CHECKING:
    from opa._components import Component
    from opa._settings_model import Settings


@dataclass(frozen=True)
class BreakerSettings:
    """The pauses between the pings of a down component: the first, and the longest."""

    first_pause: float
    longest_pause: float


def breaker_settings(settings: Settings) -> BreakerSettings | None:
    """The breaker's settings, or None when ``COMPONENT_BREAKER`` turns it off."""
    if not settings.COMPONENT_BREAKER:
        return None
    return BreakerSettings(settings.COMPONENT_PROBE_INTERVAL, settings.COMPONENT_PROBE_MAX_INTERVAL)


class Breaker:
    """Marks the components of one app down on an outage and pings each back, one task each."""

    def __init__(self, settings: BreakerSettings, pings: Pings) -> None:
        self.settings = settings
        self.pings = pings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watches: dict[str, asyncio.Task[None]] = {}

    @property
    def armed(self) -> bool:
        """True while an app serves: between its components' start and their stop."""
        return self._loop is not None

    def arm(self) -> None:
        """Start watching, on the running loop (the app's, once its components connected)."""
        self._loop = asyncio.get_running_loop()

    async def disarm(self) -> None:
        """Stop every ping task; called at shutdown, before the components disconnect."""
        self._loop = None
        watches = list(self._watches.values())
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        self._watches.clear()

    def suspect(self, component: Component) -> None:
        """An outage error was seen for *component*: ping it, and mark it down if it fails.

        Safe from any thread (a sync route runs in a worker thread); does nothing when the
        breaker is not armed or its loop has closed.
        """
        loop = self._loop
        if loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._watch(component)
            return
        # The loop closed since it was read: the app is going away and nothing is served, so
        # the caller's route must not fail for it.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._watch, component)

    def outage_in_request(self, error: BaseException, owners: list[Component]) -> None:
        """A request failed with *error*, an outage error of each of *owners*' drivers.

        Called on the loop (by the app's exception handler). The owners whose instance the
        traceback holds are marked down now; the others are pinged first, and so is an owner
        whose driver says the error may be a partial outage (one node of a cluster).
        """
        used = held_by_traceback(error, owners)
        for component in owners:
            partial = isinstance(error, Exception) and is_partial(component, error)
            if component.name in used and not partial:
                self.trip(component, f"{type(error).__name__} in a request")
            else:
                self.suspect(component)

    def trip(self, component: Component, problem: str) -> None:
        """*component*'s backend just failed (a request, a ``/health`` ping): mark it down
        and ping it back."""
        if self._loop is None:
            return
        self._mark_down(component, problem)
        self._watch(component)

    def _watch(self, component: Component) -> None:
        if self._loop is None or not component.connected:
            return
        # A finished task may still be listed (one cancelled before its first step never
        # runs its ``finally``): it pings no more, so it counts as none.
        watch = self._watches.get(component.name)
        if watch is not None and not watch.done():
            return
        self._watches[component.name] = self._loop.create_task(
            self._watch_until_up(component), name=f"opa-breaker-{component.name}"
        )

    async def _watch_until_up(self, component: Component) -> None:
        # The entry goes in the task's own last step, not in a done-callback run a loop pass
        # later: an outage seen in between would find the entry, start no task, and leave
        # the component down for good.
        try:
            await self._ping_until_up(component)
        finally:
            if self._watches.get(component.name) is asyncio.current_task():
                del self._watches[component.name]

    async def _ping_until_up(self, component: Component) -> None:
        pause = self.settings.first_pause
        problem = await self._ping(component)
        while problem is not None:
            self._mark_down(component, problem)
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.settings.longest_pause)
            problem = await self._ping(component)
        since = component.down_since
        if component.mark_up():
            seconds = time.monotonic() - since if since is not None else 0.0
            log.bind(component=component.name).warning(
                "component {!r} answers again after {:.1f}s down; serving it",
                component.name,
                seconds,
            )
            notify("opa_component_recovered", component=component, elapsed=seconds)

    async def _ping(self, component: Component) -> str | None:
        """None when the component's driver answers a ping within the bound, else why not."""
        driver = component.driver
        if driver is None:
            return "not connected"
        return await self.pings.ping_component(component, driver)

    def _mark_down(self, component: Component, problem: str) -> None:
        if component.mark_down(problem):
            log.bind(component=component.name).warning(
                "component {!r} is down: {}; its requests answer 503 until it answers a ping "
                "(every {:g}s at most; COMPONENT_BREAKER: false turns this off)",
                component.name,
                problem,
                self.settings.longest_pause,
            )
            notify("opa_component_down", component=component, error=problem)


def is_partial(component: Component, error: Exception) -> bool:
    """True when *component*'s driver says *error* may leave the rest of its backend up."""
    driver = component.driver
    return driver is not None and driver.is_partial_outage(error)


def held_by_traceback(error: BaseException, components: list[Component]) -> set[str]:
    """Names of the *components* whose instance a frame of *error*'s traceback holds.

    Only run for an outage error, so reading each frame's variables costs nothing on the
    path of a request that succeeds.
    """
    held: list[tuple[object, str]] = []
    for component in components:
        driver = component.driver
        if driver is not None and component.connected:
            for instance in (driver.instance, driver.get_instance()):
                if instance is not None:
                    held.append((instance, component.name))
    found: set[str] = set()
    trace = error.__traceback__
    while trace is not None:
        for value in trace.tb_frame.f_locals.values():
            found.update(name for instance, name in held if value is instance)
        trace = trace.tb_next
    return found
