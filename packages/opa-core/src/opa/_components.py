"""Optional components at run time: connect concurrently, check health, disconnect.

Each component connects within its own timeout, so one dead host never holds
start-up beyond its bound. Sync drivers run in worker threads for the same reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opa._breaker import Breaker, BreakerSettings
from opa._component_config import ComponentSpec, validate_options
from opa._driver_calls import Pings, call_driver
from opa._driver_registry import DriverRegistry, missing_driver_fix
from opa._drivers import Driver, driver_is_async
from opa._errors import ComponentError, ComponentUnavailableError, OpaError
from opa._extensions import notify
from opa._log import log
from opa._masking import mask_secrets
from opa._reachability import unreachable_because


@dataclass(frozen=True)
class ComponentReport:
    """One component's outcome of :meth:`Components.check`; ``target`` is masked."""

    name: str
    driver: str
    load: str
    status: str
    detail: str
    target: str


class Status(StrEnum):
    PENDING = "pending"
    OK = "ok"
    SKIPPED = "skipped"
    DISABLED = "disabled"
    UNAVAILABLE = "unavailable"
    DOWN = "down"
    FAILED = "failed"
    STOPPED = "stopped"


_OK = Status.OK  # read on every get_instance(); a module global is faster than enum access


@dataclass
class Component:
    """A configured component: its spec, its driver object once resolved, and its status.

    ``instance`` is what plugins use; attributes the driver adds (helpers beside
    the instance) are reachable on the component too.
    """

    spec: ComponentSpec
    driver: Driver | None = None
    status: Status = Status.PENDING
    detail: str = ""
    down_since: float | None = None
    """``time.monotonic()`` when the breaker marked the component down."""
    breaker: Breaker | None = None
    _override: Any = None
    _overridden: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def instance(self) -> Any:
        if self._overridden:
            return self._override
        if self.status is not _OK or self.driver is None:
            reason = f": {self.detail}" if self.detail else ""
            raise ComponentUnavailableError(
                f"component {self.name!r} is {self.status.value}{reason}"
            )
        return self.driver.get_instance()

    @property
    def connected(self) -> bool:
        """Connected, whether its backend answers (ok) or not (down)."""
        return self.status is Status.OK or self.status is Status.DOWN

    def mark_down(self, problem: str) -> bool:
        """Answer 503 for this component from now on; True when it was up until now."""
        if self.status is Status.DOWN:
            self.detail = problem
        if self.status is not Status.OK:
            return False
        self.status, self.detail, self.down_since = Status.DOWN, problem, time.monotonic()
        return True

    def mark_up(self) -> bool:
        """Serve this component again; True when it was down until now."""
        if self.status is not Status.DOWN:
            return False
        self.status, self.detail, self.down_since = Status.OK, "", None
        return True

    def report_outage(self) -> None:
        """Say that this component's backend just failed, from code that caught the error.

        opa then pings it (from any thread), and marks it down when the ping fails too.
        An outage error that reaches opa from a route is reported without this call.
        """
        if self.breaker is not None:
            self.breaker.suspect(self)

    @property
    def is_async(self) -> bool:
        return self.driver is not None and driver_is_async(type(self.driver))

    def __getattr__(self, attribute: str) -> Any:
        driver = self.__dict__.get("driver")
        if driver is None or attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(driver, attribute)

    def describe_target(self) -> str:
        """The component's URLs with credentials masked, for messages."""
        urls = self.driver.urls() if self.driver is not None else []
        return ", ".join(mask_secrets(url) for url in urls) or "no URL"


def target_from_options(opts: dict[str, Any]) -> str:
    """The masked URLs a component's options name (``URL``, ``BROKER_URL``...), for a report
    whose driver is missing or off; "-" when none: without the driver nothing else says."""
    urls = [
        mask_secrets(value)
        for key, value in opts.items()
        if isinstance(value, str) and (key.upper() == "URL" or key.upper().endswith("_URL"))
    ]
    return ", ".join(urls) or "-"


class Components:
    """All configured components of one app or worker, by lower-cased name."""

    def __init__(
        self,
        specs: list[ComponentSpec],
        registry: DriverRegistry,
        check_timeout: float = 1.0,
        health_timeout: float = 2.0,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.registry = registry
        self.check_timeout = check_timeout
        self.health_timeout = health_timeout
        self.shutdown_timeout = shutdown_timeout
        self.by_name: dict[str, Component] = {spec.name: Component(spec) for spec in specs}
        self._inherited: list[Component] = []
        self.pings = Pings(health_timeout)
        self.breaker: Breaker | None = None

    def enable_breaker(self, settings: BreakerSettings) -> None:
        """Mark components down on an outage while serving (see :mod:`opa._breaker`)."""
        self.breaker = Breaker(settings, self.pings)
        for component in self:
            component.breaker = self.breaker

    def __getitem__(self, name: str) -> Component:
        return self.get(name)

    def __iter__(self) -> Iterator[Component]:
        return iter(self.by_name.values())

    def get(self, name: str) -> Component:
        component = self.by_name.get(name.lower())
        if component is None:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise ComponentUnavailableError(
                f"no component named {name!r} is configured (configured: {known})"
            )
        return component

    def resolve(self, sync_only: bool = False) -> None:
        """Find each driver and validate its options; config errors surface before any I/O."""
        for component in self:
            self._resolve_one(component, sync_only)

    def _resolve_one(self, component: Component, sync_only: bool) -> None:
        spec = component.spec
        component.driver, component.status, component.detail = None, Status.PENDING, ""
        if spec.load == "no":
            component.status, component.detail = Status.DISABLED, "LOAD is no"
            return
        cls = self.registry.get(spec.driver)
        if cls is None:
            missing = f"no driver named {spec.driver!r} is installed"
            fix = missing_driver_fix(spec.driver, self.registry.names())
            if spec.load == "yes":
                raise ComponentError(f"component {spec.name!r}: {missing}; {fix}")
            component.status, component.detail = Status.SKIPPED, f"{missing}; {fix}"
            return
        component.driver = cls(spec.name, validate_options(spec, cls.Options))
        if sync_only and driver_is_async(cls):
            component.status = Status.SKIPPED
            component.detail = (
                "async driver; not connected in a sync context (a worker or a shell), "
                "where only sync drivers connect"
            )

    async def check(self) -> list[ComponentReport]:
        """Resolve and connect each component once, report each, disconnect all; never raises.

        ``opa check`` uses it: one component's failure neither stops the others nor the report.
        """

        async def one(component: Component) -> ComponentReport:
            problem = ""
            try:
                self._resolve_one(component, sync_only=False)
                if component.status is Status.PENDING:
                    await self._start_one(component)
            except Exception as exc:  # a driver's own code may raise anything
                component.status = Status.FAILED
                problem = str(exc) if isinstance(exc, OpaError) else f"{type(exc).__name__}: {exc}"
            spec = component.spec
            target = component.describe_target()
            if component.driver is None:
                target = target_from_options(spec.opts)
            detail = mask_secrets(problem or component.detail)
            status = component.status.value
            return ComponentReport(spec.name, spec.driver, spec.load, status, detail, target)

        try:
            return list(await asyncio.gather(*(one(c) for c in self)))
        finally:
            await self.stop()

    async def start(self, sync_only: bool = False) -> None:
        """Resolve and connect every component; on any fatal error disconnect and raise."""
        self.resolve(sync_only=sync_only)
        for component in self:
            if component.status is Status.SKIPPED:
                log.bind(component=component.name).warning(
                    "skipping component {!r}: {}", component.name, component.detail
                )
        pending = [c for c in self if c.status is Status.PENDING]
        results = await asyncio.gather(
            *(self._start_one(c) for c in pending), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            for failure in failures:
                if not isinstance(failure, Exception):
                    raise failure
            if len(failures) == 1:
                raise failures[0]
            raise ComponentError("; ".join(str(f) for f in failures))
        if self.breaker is not None and not sync_only:
            self.breaker.arm()

    async def _unreachable_because(
        self, driver: Driver, targets: list[tuple[str, int]]
    ) -> str | None:
        """None when the targets answer as the driver's ``reachable_when`` asks, else why not.

        Every target is probed at once, so a seed list costs one check timeout, not one each.
        """
        problems = await asyncio.gather(
            *(unreachable_because(host, port, self.check_timeout) for host, port in targets)
        )
        failed = [problem for problem in problems if problem is not None]
        if not failed or (driver.reachable_when == "any" and len(failed) < len(problems)):
            return None
        if driver.reachable_when == "any" and len(failed) > 1:
            return f"none of the {len(failed)} hosts answered: " + "; ".join(failed)
        return failed[0]

    async def _start_one(self, component: Component) -> None:
        driver, spec = component.driver, component.spec
        assert driver is not None
        target = component.describe_target()
        # In a thread: a driver may resolve names here (mongodb+srv), which would block the loop.
        try:
            targets = await asyncio.to_thread(driver.reachability_targets)
        except Exception as exc:  # an address urllib cannot split, such as "redis://[::1"
            component.status, component.detail = Status.FAILED, "bad address"
            reason = mask_secrets(f"{type(exc).__name__}: {exc}")
            raise self._failed(
                component,
                f"component {spec.name!r}: cannot read the address to check: {reason}; "
                "fix the URL in its OPTS",
            ) from None
        problem = await self._unreachable_because(driver, targets)
        if problem is not None:
            if spec.load == "yes":
                component.status, component.detail = Status.FAILED, "unreachable"
                problem = mask_secrets(problem)
                raise self._failed(
                    component, f"component {spec.name!r} ({target}): pre-check failed: {problem}"
                )
            component.status, component.detail = Status.SKIPPED, "unreachable"
            log.bind(component=component.name).warning(
                "skipping component {!r} ({}): {} (set its LOAD to no if it is not wanted)",
                spec.name,
                target,
                mask_secrets(problem),
            )
            return
        start = time.perf_counter()
        try:
            async with asyncio.timeout(spec.timeout):
                await call_driver(driver, driver.connect)
                await call_driver(driver, driver.validate)
        except TimeoutError:
            component.status, component.detail = Status.FAILED, "timed out"
            await self._disconnect(component)
            raise self._failed(
                component,
                f"component {spec.name!r} ({target}) did not connect within {spec.timeout:g}s; "
                "is the server there answering? If it is slow, raise the component's TIMEOUT "
                "(or COMPONENT_TIMEOUT for all)",
            ) from None
        except Exception as exc:
            component.status, component.detail = Status.FAILED, "connect failed"
            await self._disconnect(component)
            reason = mask_secrets(f"{type(exc).__name__}: {exc}")
            raise self._failed(
                component,
                f"component {spec.name!r} ({target}) failed to connect: {reason}; "
                "check the server there is the one its OPTS expect (address, credentials)",
            ) from None
        component.status, component.detail = Status.OK, ""
        log.bind(component=spec.name).info(
            "component {!r} connected ({}, driver {})", spec.name, target, spec.driver
        )
        elapsed = time.perf_counter() - start
        notify("opa_component_connected", component=component, elapsed=elapsed)

    @staticmethod
    def _failed(component: Component, message: str) -> ComponentError:
        """Tell the extensions *component* did not connect; the error to raise."""
        notify("opa_component_failed", component=component, error=message)
        return ComponentError(message)

    async def _disconnect(self, component: Component) -> None:
        driver = component.driver
        if driver is None or driver.instance is None:
            return
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                await call_driver(driver, driver.disconnect)
        except Exception as exc:
            log.bind(component=component.name).warning(
                "component {!r} did not disconnect cleanly: {}",
                component.name,
                mask_secrets(f"{type(exc).__name__}: {exc}"),
            )
        driver.instance = None
        # Cleaning up after a failed connect is no disconnection of a connected component.
        if component.connected:
            notify("opa_component_disconnected", component=component)

    async def stop(self) -> None:
        """Stop the breaker's pings, then disconnect every connected component, each within
        the shutdown bound."""
        if self.breaker is not None:
            await self.breaker.disarm()
        self.pings.clear()
        connected = [c for c in self if c.driver is not None and c.driver.instance is not None]
        await asyncio.gather(*(self._disconnect(c) for c in connected))
        for component in connected:
            if component.connected:
                component.status, component.detail = Status.STOPPED, "disconnected"

    async def health(self) -> dict[str, dict[str, str]]:
        """Each component's current status, pinging the ones that are up within a bound.

        A down component is not pinged here: the breaker is pinging it. With the breaker, a
        failed ping marks the component down; without it, the answer says ``unavailable``.
        """

        async def one(component: Component) -> tuple[str, dict[str, str]]:
            driver = component.driver
            if component.status is Status.OK and driver is not None:
                problem = await self.pings.ping_component(component, driver)
                if problem is not None:
                    if self.breaker is None or not self.breaker.armed:
                        return component.name, self._entry(component, Status.UNAVAILABLE, problem)
                    self.breaker.trip(component, problem)
            return component.name, self._entry(component, component.status, component.detail)

        return dict(await asyncio.gather(*(one(c) for c in self)))

    @staticmethod
    def _entry(component: Component, status: Status, detail: str) -> dict[str, str]:
        entry = {"status": status.value, "load": component.spec.load}
        if detail:
            entry["detail"] = detail
        return entry

    def reconnect_after_fork(self, keep: Collection[str] = ()) -> Components:
        """In a forked child (a prefork worker): connect the sync components afresh.

        Components named in *keep* stay as inherited. The inherited drivers of the others
        are set aside, never closed: their sockets belong to the parent. Returns the fresh
        components, which are also what this object hands out from now on.
        """
        renewed = [c for c in self if c.name not in keep]
        self._inherited.extend(renewed)
        fresh = Components(
            [c.spec for c in renewed],
            self.registry,
            check_timeout=self.check_timeout,
            health_timeout=self.health_timeout,
            shutdown_timeout=self.shutdown_timeout,
        )
        fresh.start_sync()
        self.by_name.update(fresh.by_name)
        return fresh

    def start_sync(self) -> None:
        """Connect the sync drivers only, for workers and shells that run no event loop."""
        asyncio.run(self.start(sync_only=True))

    def stop_sync(self) -> None:
        asyncio.run(self.stop())

    @contextmanager
    def override(self, name: str, instance: Any) -> Iterator[None]:
        """Make ``get_instance(name)`` return *instance* inside the block (test doubles)."""
        component = self.get(name)
        saved = component._overridden, component._override
        component._overridden, component._override = True, instance
        try:
            yield
        finally:
            component._overridden, component._override = saved
