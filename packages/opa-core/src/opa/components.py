"""Optional components at run time: connect concurrently, check health, disconnect.

Each component connects within its own timeout, so one dead host never holds
start-up beyond its bound. Sync drivers run in worker threads for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opa.component_config import ComponentSpec, validate_options
from opa.driver_registry import DriverRegistry, install_hint
from opa.drivers import Driver, driver_is_async
from opa.errors import ComponentError, ComponentUnavailableError, OpaError
from opa.log import log
from opa.masking import mask_secrets


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


# Sync driver calls run here rather than in asyncio's default executor: asyncio.run()
# waits for that one at exit without a bound, so a hung connect would outlive its timeout.
_SYNC_CALLS = ThreadPoolExecutor(thread_name_prefix="opa-driver")


def _renew_sync_calls() -> None:
    # A forked child inherits the pool but not its threads: work given to it would never run.
    global _SYNC_CALLS
    _SYNC_CALLS = ThreadPoolExecutor(thread_name_prefix="opa-driver")


os.register_at_fork(after_in_child=_renew_sync_calls)


async def _call(driver: Driver, method: Callable[[], Any]) -> Any:
    if driver_is_async(type(driver)):
        result = method()
        return await result if inspect.isawaitable(result) else result
    return await asyncio.get_running_loop().run_in_executor(_SYNC_CALLS, method)


async def _reachable(host: str, port: int, timeout: float) -> str | None:
    """None when host:port accepts TCP within *timeout*, else why not."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"{host}:{port} did not accept a connection within {timeout:g}s"
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc.strerror or type(exc).__name__})"
    except (OverflowError, ValueError) as exc:  # a port over 65535, a host IDNA cannot encode
        return f"{host}:{port} is not a valid address ({exc})"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


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
            hint = install_hint(spec.driver)
            missing = f"no driver named {spec.driver!r} is installed"
            fix = f"; install it with: {hint}" if hint else ""
            if spec.load == "yes":
                raise ComponentError(f"component {spec.name!r}: {missing}{fix}")
            component.status, component.detail = Status.SKIPPED, f"{missing}{fix}"
            return
        component.driver = cls(spec.name, validate_options(spec, cls.Options))
        if sync_only and driver_is_async(cls):
            component.status = Status.SKIPPED
            component.detail = "async driver; not connected in a sync context"

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
            if component.driver is None and isinstance(spec.opts.get("URL"), str):
                target = mask_secrets(spec.opts["URL"])
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
                log.info("skipping component {!r}: {}", component.name, component.detail)
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
            raise ComponentError(
                f"component {spec.name!r}: cannot read the address to check: {reason}"
            ) from None
        for host, port in targets:
            problem = await _reachable(host, port, self.check_timeout)
            if problem is None:
                continue
            if spec.load == "yes":
                component.status, component.detail = Status.FAILED, "unreachable"
                raise ComponentError(
                    f"component {spec.name!r} ({target}): pre-check failed: {mask_secrets(problem)}"
                )
            component.status, component.detail = Status.SKIPPED, "unreachable"
            log.warning("skipping component {!r} ({}): {}", spec.name, target, problem)
            return
        try:
            async with asyncio.timeout(spec.timeout):
                await _call(driver, driver.connect)
                await _call(driver, driver.validate)
        except TimeoutError:
            component.status, component.detail = Status.FAILED, "timed out"
            await self._disconnect(component)
            raise ComponentError(
                f"component {spec.name!r} ({target}) did not connect within {spec.timeout:g}s"
            ) from None
        except Exception as exc:
            component.status, component.detail = Status.FAILED, "connect failed"
            await self._disconnect(component)
            reason = mask_secrets(f"{type(exc).__name__}: {exc}")
            raise ComponentError(
                f"component {spec.name!r} ({target}) failed to connect: {reason}"
            ) from None
        component.status, component.detail = Status.OK, ""
        log.info("component {!r} connected ({}, driver {})", spec.name, target, spec.driver)

    async def _disconnect(self, component: Component) -> None:
        driver = component.driver
        if driver is None or driver.instance is None:
            return
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                await _call(driver, driver.disconnect)
        except Exception as exc:
            log.warning(
                "component {!r} did not disconnect cleanly: {}",
                component.name,
                mask_secrets(f"{type(exc).__name__}: {exc}"),
            )
        driver.instance = None

    async def stop(self) -> None:
        """Disconnect every connected component, each within the shutdown bound."""
        connected = [c for c in self if c.driver is not None and c.driver.instance is not None]
        await asyncio.gather(*(self._disconnect(c) for c in connected))
        for component in connected:
            if component.status is Status.OK:
                component.status, component.detail = Status.STOPPED, "disconnected"

    async def health(self) -> dict[str, dict[str, str]]:
        """Each component's current status, pinging the connected ones within a bound."""

        async def one(component: Component) -> tuple[str, dict[str, str]]:
            entry = {"status": component.status.value, "load": component.spec.load}
            if component.detail:
                entry["detail"] = component.detail
            if component.status is Status.OK and component.driver is not None:
                driver = component.driver
                try:
                    async with asyncio.timeout(self.health_timeout):
                        await _call(driver, driver.ping)
                except Exception as exc:
                    entry["status"] = Status.UNAVAILABLE.value
                    entry["detail"] = (
                        "timed out"
                        if isinstance(exc, TimeoutError)
                        else (f"ping failed ({type(exc).__name__})")
                    )
            return component.name, entry

        return dict(await asyncio.gather(*(one(c) for c in self)))

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
