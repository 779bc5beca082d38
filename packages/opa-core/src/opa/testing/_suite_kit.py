"""What the compliance suite's cases share: the driver author's declarations and the helpers.

:class:`SuiteBase` holds what a driver package fills in (its names, options, a round trip
through its instance, its timeouts, its opt-outs) and the machinery that runs the driver the
way an app does. The cases live in :mod:`opa.testing._outage_cases` and
:mod:`opa.testing._compliance`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from importlib.metadata import EntryPoint
from typing import Any, ClassVar, TypeVar

import pytest
from fastapi import FastAPI

from opa import _runtime as runtime
from opa._app import app_for
from opa._bootstrap import settings_and_logging
from opa._component_config import parse_components
from opa._components import Component, Components
from opa._driver_registry import DriverRegistry, InstalledDriver
from opa._drivers import ENTRY_POINT_GROUP, Driver
from opa._plugin_manager import PluginManager
from opa.testing import NO_SETTINGS_DIR, _without_machine_variables
from opa.testing._proxy import TcpProxy

T = TypeVar("T")

OUTAGE_CASES: dict[str, str] = {
    "host-check": "LOAD auto probes the backend's host, its default port too, and skips it if down",
    "dropped-connections": "a call over dropped connections is an outage the app answers 503",
    "silent-host": "connecting to, and calling, a host that never answers end in time",
    "recovery": "calls succeed again once the backend is back, with no reconnect by hand",
    "refused-login": "a server refusing the login or the database fails start-up cleanly",
    "client-import": "the client library is imported on connect, not with the entry point",
    "two-components": "two components on one driver share no state",
    "concurrent-use": "the instance serves 32 threads (sync) or tasks (async) at once",
}
"""The cases an author may opt out of, each by a declared reason (``opt_outs``)."""


async def within(
    seconds: float,
    what: str,
    awaitable: Awaitable[T],
    hint: str = "",
    on_expiry: Callable[[], None] | None = None,
) -> T:
    """Await *awaitable*, failing the test (rather than hanging it) after *seconds*.

    *on_expiry* runs first when time is up: closing a proxy there frees a thread that a
    driver without timeouts left blocked on a socket, so the test ends.
    """
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            if on_expiry is not None:
                on_expiry()
            pytest.fail(f"{what} did not finish within {seconds:g}s{hint}", pytrace=False)
        raise


def _checked(answer: Any, token: str) -> Any:
    """*answer*, once it is seen to hold *token* (bytes are decoded to look)."""
    text = (
        bytes(answer).decode(errors="replace") if isinstance(answer, bytes | bytearray) else answer
    )
    assert token in str(text), f"round_trip() answered {answer!r} to a call for {token!r}"
    return answer


SUITE_PACKAGE = "opa.testing."
SKIPPING_MARKS = frozenset({"skip", "skipif", "xfail"})


def _seconds_in(options: Mapping[str, Any]) -> float:
    """The sum of the numbers in *options*, nested mappings included."""
    total = 0.0
    for value in options.values():
        if isinstance(value, Mapping):
            total += _seconds_in(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total += value
    return total


class SuiteBase:
    """The declarations and helpers of :class:`opa.testing.DriverComplianceSuite`."""

    driver_name: ClassVar[str] = ""
    distribution: ClassVar[str | None] = None
    component_name: ClassVar[str] = "compliance"
    """The component the suite configures; its name must show up in every error."""
    timeout: ClassVar[float] = 5.0
    """The component's ``TIMEOUT``: start-up against a dead host must end within it."""
    check_timeout: ClassVar[float] = 1.0
    """The reachability check's bound (``COMPONENT_CHECK_TIMEOUT``)."""
    slack: ClassVar[float] = 2.0
    """Added to every bound, so a slow CI machine does not fail a correct driver."""
    required_option: ClassVar[str] = "URL"
    """The option that says where the backend is (``BROKER_URL`` for Celery, say)."""
    client_libraries: ClassVar[tuple[str, ...]] = ()
    """Top-level modules of the client library (``("redis", "walrus")``): loading the
    driver's entry point must import none of them."""
    timeout_options: ClassVar[Mapping[str, Any]] = {}
    """``OPTS`` that bound every blocking step of the driver, say ``{"CONNECT_TIMEOUT": 1,
    "SOCKET_TIMEOUT": 1}``. The outage cases add them to ``live_options``; against a host
    that never answers, connecting and a call must each end within :meth:`outage_bound`."""
    blocking_timeout: ClassVar[float] = 0.0
    """Seconds ``timeout_options`` let one blocking step take; 0 means the sum of the
    numbers in them (nested mappings included)."""
    opt_outs: ClassVar[Mapping[str, str]] = {}
    """Outage cases that cannot apply to this driver, each with the reason, which the test
    report shows: ``{"refused-login": "the server has no login"}``. The names are those of
    ``OUTAGE_CASES``; nothing else skips a case."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a driver's suite that would drop a case other than through ``opt_outs``."""
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith(SUITE_PACKAGE):
            return
        cases = {
            name
            for klass in cls.__mro__
            if klass.__module__.startswith(SUITE_PACKAGE)
            for name in vars(klass)
            if name.startswith("test_")
        }
        replaced = sorted(cases & set(vars(cls)))
        marks = [mark for mark in vars(cls).get("pytestmark", []) if mark.name in SKIPPING_MARKS]
        if replaced or marks:
            what = ", ".join(replaced) if replaced else f"pytest.mark.{marks[0].name} on the class"
            raise TypeError(
                f"{cls.__qualname__} drops cases of the driver compliance suite ({what}); a "
                "case is left out only by a declared reason: opt_outs = {'<case>': '<why>'} "
                f"for one of {', '.join(sorted(OUTAGE_CASES))}"
            )

    # What the driver package provides.

    @pytest.fixture
    def live_options(self) -> dict[str, Any]:
        """``OPTS`` that reach the live backend: THE place to point the suite at your server.

        Override it as a fixture, so it may ask for others (``redis_url`` from
        ``opa.testing.fixtures``, say); only the tests that need a backend request it.
        """
        pytest.fail(
            f"{type(self).__name__} must override the live_options fixture with the OPTS "
            "of a running backend",
            pytrace=False,
        )

    def unreachable_options(self) -> dict[str, Any]:
        """``OPTS`` naming a closed port on 127.0.0.1 (see :func:`opa.testing.closed_port`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement unreachable_options()")

    def credential_options(self, password: str) -> dict[str, Any]:
        """``OPTS`` whose URL embeds *password*, pointing at an unreachable or live server."""
        raise NotImplementedError(f"{type(self).__name__} must implement credential_options()")

    def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
        """``OPTS`` the driver must refuse, each with the option name the error must mention."""
        raise NotImplementedError(f"{type(self).__name__} must implement invalid_options()")

    def refused_options(self, live_options: dict[str, Any], password: str) -> dict[str, Any]:
        """``OPTS`` for the live server that it refuses: a wrong login or an unknown database,
        with *password* in the URL (the start-up error must show it masked)."""
        pytest.fail(
            f"{type(self).__name__} must implement refused_options(): OPTS for the live server "
            "with a login or database it refuses (or declare opt_outs['refused-login'])",
            pytrace=False,
        )

    def round_trip(self, component: Component, token: str) -> Any:
        """One real call to the server through ``component.instance``, as a plugin makes it.

        Return the answer, which must hold *token* (``instance.echo(token)``, a document
        stored under it). For an async driver, return an awaitable (write it ``async def``).
        Each call gets a token of its own, so an instance that mixes up concurrent calls'
        answers fails.
        """
        pytest.fail(
            f"{type(self).__name__} must implement round_trip(component, token): one call "
            "through component.instance whose answer holds token",
            pytrace=False,
        )

    def proxied_options(self, live_options: dict[str, Any], proxy: TcpProxy) -> dict[str, Any]:
        """``live_options`` pointed at *proxy*: by default its ``required_option`` URL
        rewritten by :meth:`TcpProxy.url`, with ``timeout_options`` added."""
        url = live_options.get(self.required_option)
        if not isinstance(url, str):
            pytest.fail(
                f"live_options has no {self.required_option} URL to point at the proxy; "
                "override proxied_options()",
                pytrace=False,
            )
        return {**live_options, **self.timeout_options, self.required_option: proxy.url(url)}

    def entry_points(self) -> Iterable[EntryPoint] | None:
        """The ``opa.drivers`` entry points to search; None means the installed ones."""
        return None

    def driver_class(self) -> type[Driver]:
        """The driver under test; by default loaded from its entry point."""
        cls = DriverRegistry(self.entry_points()).get(self._driver_name())
        if cls is None:
            pytest.fail(
                f"no driver named {self.driver_name!r} in the {ENTRY_POINT_GROUP} entry points; "
                "install the driver's distribution, or override driver_class()",
                pytrace=False,
            )
        return cls

    # Helpers for the tests (and for a driver's own extra tests).

    def make_registry(self) -> DriverRegistry:
        """A driver registry that resolves ``driver_name`` the way an app's would."""
        if self.distribution is not None:
            return DriverRegistry(self.entry_points())
        registry = DriverRegistry(installed=[])
        registry.add_plugin_driver(self.driver_class(), "compliance suite")
        return registry

    def component_config(
        self, load: str, opts: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """One component's configuration: this driver with *opts* under LOAD *load*."""
        return {
            "LOAD": load,
            "DRIVER": self._driver_name(),
            "OPTS": dict(opts),
            "TIMEOUT": self.timeout if timeout is None else timeout,
        }

    def make_components(
        self,
        load: str,
        opts: Mapping[str, Any],
        *,
        timeout: float | None = None,
        names: Iterable[str] = (),
    ) -> Components:
        """Components of this driver, parsed as configuration is: ``component_name`` and
        any further *names*, all with *opts*; *timeout* is their ``TIMEOUT``."""
        raw = {
            name: self.component_config(load, opts, timeout)
            for name in (self.component_name, *names)
        }
        specs = parse_components(raw, default_timeout=self.timeout)
        return Components(specs, self.make_registry(), check_timeout=self.check_timeout)

    def make_app(self, load: str, opts: Mapping[str, Any]) -> FastAPI:
        """An app whose only component is this driver's, isolated from the machine as
        :func:`opa.testing.build_app` is, its driver found as :meth:`make_registry` finds it."""
        settings = {
            "OPTIONAL_COMPONENTS": {self.component_name: self.component_config(load, opts)},
            "PLUGIN_ENTRY_POINTS": False,
            "COMPONENT_CHECK_TIMEOUT": self.check_timeout,
        }
        with _without_machine_variables():
            resolved = settings_and_logging(settings, settings_dir=NO_SETTINGS_DIR)
        found = self.entry_points()
        installed = [] if self.distribution is None else None if found is None else list(found)
        manager = PluginManager(resolved, installed_drivers=installed)
        if self.distribution is None:
            manager.drivers.add_plugin_driver(self.driver_class(), "compliance suite")
        runtime.activate(manager)
        manager.load()
        return app_for(manager)

    async def call(self, component: Component, token: str) -> Any:
        """:meth:`round_trip` as a route makes it (a sync driver's in a worker thread), its
        answer checked for *token*."""
        if not component.is_async:
            return await asyncio.to_thread(self.sync_call, component, token)
        answer = self.round_trip(component, token)
        if not inspect.isawaitable(answer):
            pytest.fail(
                f"round_trip() of async driver {self.driver_name!r} must return an "
                "awaitable; write it async def",
                pytrace=False,
            )
        return _checked(await answer, token)

    def sync_call(self, component: Component, token: str) -> Any:
        """:meth:`round_trip` of a sync driver, in the calling thread, its answer checked."""
        return _checked(self.round_trip(component, token), token)

    def outage_bound(self) -> float:
        """How long connecting to, or a call on, a silent host may take: twice
        ``blocking_timeout`` (a client may retry once), plus ``slack``."""
        if not self.timeout_options:
            pytest.fail(
                f"{type(self).__name__} declares no timeout_options: name the OPTS that bound "
                "the driver's connect and socket waits (e.g. {'CONNECT_TIMEOUT': 1, "
                "'SOCKET_TIMEOUT': 1}); without them a host that never answers hangs a call",
                pytrace=False,
            )
        seconds = self.blocking_timeout or _seconds_in(self.timeout_options)
        return 2 * seconds + self.slack

    def unless_opted_out(self, case: str) -> None:
        """Skip *case* when the class declares it in ``opt_outs``, reporting the reason.

        The only way an outage case skips: a reason the author wrote, shown in the report.
        """
        self.check_opt_outs()
        reason = self.opt_outs.get(case)
        if reason is not None:
            pytest.skip(f"{type(self).__name__} opts out of {case!r}: {reason}")

    def check_opt_outs(self) -> None:
        """Fail unless every opt-out names a known case and gives a reason."""
        for case, reason in self.opt_outs.items():
            if case not in OUTAGE_CASES:
                known = ", ".join(sorted(OUTAGE_CASES))
                pytest.fail(
                    f"{type(self).__name__}.opt_outs names {case!r}, which is no case of the "
                    f"suite; the cases one may opt out of: {known}",
                    pytrace=False,
                )
            if not isinstance(reason, str) or not reason.strip():
                pytest.fail(
                    f"{type(self).__name__}.opt_outs[{case!r}] gives no reason; say why the "
                    "case cannot apply to this driver (it is shown in the test report)",
                    pytrace=False,
                )

    def _driver_name(self) -> str:
        if not self.driver_name:
            pytest.fail(f"{type(self).__name__} must set driver_name", pytrace=False)
        return self.driver_name

    def _installed(self) -> InstalledDriver:
        if self.distribution is None:
            pytest.skip("distribution is None: the driver is not installed through an entry point")
        installed = DriverRegistry(self.entry_points()).installed.get(self._driver_name().lower())
        if installed is None:
            pytest.fail(
                f"no entry point named {self.driver_name!r} in group {ENTRY_POINT_GROUP!r}; "
                f'declare it under [project.entry-points."{ENTRY_POINT_GROUP}"] in the '
                f"pyproject.toml of {self.distribution} and reinstall it",
                pytrace=False,
            )
        return installed
