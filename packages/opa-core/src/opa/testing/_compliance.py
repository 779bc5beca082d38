"""The compliance suite every opa driver runs against its own backend.

A driver package subclasses :class:`DriverComplianceSuite` in one of its test modules, names
the subclass ``Test...`` so pytest collects it, and fills in what only it knows::

    class TestWalrusCompliance(DriverComplianceSuite):
        driver_name = "redis-walrus"
        distribution = "opa-driver-redis-walrus"

        @pytest.fixture
        def live_options(self, redis_url: str) -> dict[str, Any]:
            return {"URL": redis_url}

        def unreachable_options(self) -> dict[str, Any]:
            return {"URL": f"redis://127.0.0.1:{closed_port()}/0"}

        def credential_options(self, password: str) -> dict[str, Any]:
            return {"URL": f"redis://:{password}@127.0.0.1:{closed_port()}/0"}

        def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
            return [({"URL": "redis://127.0.0.1/0", "MAX_CONNECTIONS": -1}, "MAX_CONNECTIONS")]

        client_libraries = ("redis", "walrus")
        timeout_options = {"CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}

        def refused_options(self, live_options: dict[str, Any], password: str) -> dict[str, Any]:
            return {**live_options, "URL": f"redis://opa:{password}@127.0.0.1:6379/0"}

        def round_trip(self, component: Component, token: str) -> Any:
            return component.instance.echo(token)

The tests go through opa's own machinery (component specs parsed as configuration is,
:class:`~opa._components.Components` connecting them), so they prove what an app will do
with the driver. They are plain sync tests: no asyncio plugin for pytest is needed. The
outage cases (:mod:`opa.testing._outage_cases`) put the backend behind a
:class:`~opa.testing.TcpProxy` and drop it, silence it and bring it back.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import secrets
import traceback
from typing import Any

import pytest

from opa._components import Status
from opa._driver_registry import DriverRegistry
from opa._drivers import (
    CONTRACT_METHODS,
    SUPPORTED_CONTRACT_VERSIONS,
    Driver,
    check_driver_class,
    driver_is_async,
)
from opa._errors import ComponentError, ComponentUnavailableError, OptionsError
from opa._masking import mask_secrets
from opa.testing._logs import captured_logs
from opa.testing._outage_cases import OutageCases
from opa.testing._suite_kit import within


def _canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


class DriverComplianceSuite(OutageCases):
    """Tests every opa driver must pass; subclass it once per driver.

    Set ``driver_name`` (the entry-point name, which is the ``DRIVER`` value in
    configuration) and ``distribution`` (the distribution expected to provide it, or None
    for a driver not installed through an entry point), ``client_libraries`` and
    ``timeout_options``; provide the ``live_options`` fixture and the
    ``unreachable_options``, ``credential_options``, ``invalid_options``,
    ``refused_options`` and ``round_trip`` methods. Override ``driver_class`` to test a
    class directly. An outage case that cannot apply is left out only by a reason declared
    in ``opt_outs``; overriding a case, or a skip mark on the class, is refused.
    """

    # The driver's declaration.

    def test_entry_point_resolves_to_the_driver(self) -> None:
        """The opa.drivers entry point loads a Driver subclass named like the entry point."""
        installed = self._installed()
        loaded = installed.entry_point.load()
        assert isinstance(loaded, type), f"{installed.entry_point.value} is not a class"
        assert issubclass(loaded, Driver), f"{loaded.__qualname__} is not an opa.Driver subclass"
        assert loaded.name == installed.entry_point.name, (
            f"entry point {installed.entry_point.name!r} loads a driver named {loaded.name!r}"
        )
        assert DriverRegistry(self.entry_points()).get(self.driver_name) is loaded

    def test_entry_point_comes_from_the_distribution(self) -> None:
        """The entry point is provided by the distribution the driver is published as."""
        installed = self._installed()
        assert self.distribution is not None
        assert _canonical(installed.distribution) == _canonical(self.distribution), (
            f"{self.driver_name!r} comes from {installed.distribution}, not {self.distribution}"
        )

    def test_declares_a_supported_contract_version(self) -> None:
        """The driver declares a contract version this opa-core accepts."""
        version = self.driver_class().contract_version
        assert version in SUPPORTED_CONTRACT_VERSIONS, (
            f"contract_version is {version!r}; this opa-core accepts "
            f"{sorted(SUPPORTED_CONTRACT_VERSIONS)}"
        )

    def test_async_flag_agrees_with_the_methods(self) -> None:
        """is_async is declared and connect, validate, ping and disconnect all agree with it."""
        cls = self.driver_class()
        assert cls.is_async is not None, "declare is_async = True or is_async = False"
        check_driver_class(cls, "compliance suite")
        assert cls.connect is not Driver.connect, "connect() is not implemented"
        for method_name in CONTRACT_METHODS:
            method = getattr(cls, method_name)
            if method is getattr(Driver, method_name):
                continue  # the base class's defaults suit sync and async drivers alike
            assert inspect.iscoroutinefunction(method) == driver_is_async(cls), (
                f"{method_name}() does not match is_async={cls.is_async}"
            )

    # Options.

    def test_invalid_options_are_refused(self) -> None:
        """Each invalid OPTS is refused with an OptionsError naming the component and option."""
        cases = self.invalid_options()
        assert cases, "invalid_options() must list at least one OPTS the driver refuses"
        for opts, option in cases:
            components = self.make_components("yes", opts)
            with pytest.raises(OptionsError) as caught:
                components.resolve()
            message = str(caught.value)
            assert self.component_name in message, f"the error names no component: {message}"
            assert option in message, f"the error does not name option {option}: {message}"

    def test_missing_url_is_refused(self) -> None:
        """OPTS without the backend's address are refused, naming the component and option."""
        option = self.required_option
        field = self.driver_class().Options.model_fields.get(option)
        assert field is not None and field.is_required(), (
            f"{option} is not a required option; set required_option to the one that is"
        )
        opts = {k: v for k, v in self.unreachable_options().items() if k.upper() != option}
        with pytest.raises(OptionsError) as caught:
            self.make_components("yes", opts).resolve()
        message = str(caught.value)
        assert self.component_name in message, message
        assert option in message, message

    # A live backend.

    def test_connects_validates_pings_and_disconnects(self, live_options: dict[str, Any]) -> None:
        """Under LOAD yes the driver connects, validates, pings and disconnects a live backend."""
        components = self.make_components("yes", live_options)

        async def lifecycle() -> dict[str, dict[str, str]]:
            await components.start()
            try:
                assert components.get(self.component_name).instance is not None
                return await components.health()
            finally:
                await components.stop()

        bound = self.timeout * 2 + self.slack
        health = asyncio.run(within(bound, "start, health and stop", lifecycle()))
        assert health[self.component_name]["status"] == Status.OK.value, health
        with pytest.raises(ComponentUnavailableError):
            components.get(self.component_name).instance  # noqa: B018 - the access is the test

    def test_auto_connects_a_reachable_backend(self, live_options: dict[str, Any]) -> None:
        """Under LOAD auto a reachable backend passes the check and is connected."""
        components = self.make_components("auto", live_options)

        async def start_and_stop() -> Status:
            await components.start()
            try:
                return components.get(self.component_name).status
            finally:
                await components.stop()

        bound = self.timeout * 2 + self.slack
        status = asyncio.run(within(bound, "start and stop", start_and_stop()))
        assert status is Status.OK, f"LOAD auto left the component {status.value}"

    def test_sync_context_connects_only_sync_drivers(self, live_options: dict[str, Any]) -> None:
        """Without an event loop a sync driver connects and an async one is skipped."""
        components = self.make_components("yes", live_options)
        components.start_sync()
        try:
            component = components.get(self.component_name)
            if driver_is_async(self.driver_class()):
                assert component.status is Status.SKIPPED, component.status
            else:
                assert component.status is Status.OK, component.status
                assert component.instance is not None
        finally:
            components.stop_sync()

    # A dead backend.

    def test_auto_skips_an_unreachable_backend(self) -> None:
        """Under LOAD auto an unreachable backend is skipped, without an error or a hang."""
        self.unless_opted_out("host-check")
        components = self.make_components("auto", self.unreachable_options())
        components.resolve()
        driver = components.get(self.component_name).driver
        assert driver is not None
        assert driver.reachability_targets(), (
            "reachability_targets() is empty for unreachable_options(); LOAD auto cannot "
            "tell that the backend is down"
        )
        bound = self.check_timeout + self.timeout + self.slack
        asyncio.run(within(bound, "start-up against a dead host", components.start()))
        component = components.get(self.component_name)
        assert component.status is Status.SKIPPED, component.status
        with pytest.raises(ComponentUnavailableError):
            component.instance  # noqa: B018 - the access is the test

    def test_a_url_without_its_port_is_still_probed(self) -> None:
        """The unreachable URL with its port left out still gives LOAD auto a host to probe:
        the driver declares its scheme's default port."""
        self.unless_opted_out("host-check")
        opts = self.unreachable_options()
        url = opts.get(self.required_option)
        if not isinstance(url, str):
            return  # no URL option: the driver finds its targets elsewhere
        portless = re.sub(r"^([^:/]+://(?:[^@/]*@)?[^:/?,]+):\d+", r"\1", url)
        components = self.make_components("auto", {**opts, self.required_option: portless})
        try:
            components.resolve()
        except OptionsError:
            return  # the options require a port, so every URL names one
        driver = components.get(self.component_name).driver
        assert driver is not None
        scheme = portless.partition("://")[0]
        assert driver.reachability_targets(), (
            f"a {scheme}:// URL without a port gives LOAD auto nothing to probe, so an "
            "unreachable backend fails start-up instead of being skipped; declare "
            f"default_ports = {{{scheme.partition('+')[0]!r}: <its port>}} on the driver"
        )

    def test_yes_fails_fast_on_an_unreachable_backend(self) -> None:
        """Under LOAD yes an unreachable backend fails start-up in time, naming the component."""
        components = self.make_components("yes", self.unreachable_options())
        bound = self.timeout + self.slack
        with pytest.raises(ComponentError) as caught:
            asyncio.run(within(bound, "start-up against a dead host", components.start()))
        message = str(caught.value)
        assert self.component_name in message, message
        driver = components.get(self.component_name).driver
        for url in driver.urls() if driver is not None else []:
            assert mask_secrets(url) in message, f"the error does not say which host: {message}"

    def test_credentials_never_leak(self) -> None:
        """A password in the OPTS never reaches a log line, an error or the health report."""
        password = f"pw-{secrets.token_hex(8)}"
        opts = self.credential_options(password)
        assert password in repr(opts), "credential_options() must embed the password it is given"
        outputs: dict[str, str] = {}
        with captured_logs() as logs:
            for load in ("auto", "yes"):
                components = self.make_components(load, opts)
                try:
                    asyncio.run(within(self.timeout + self.slack, "start-up", components.start()))
                except ComponentError as exc:
                    outputs[f"error under LOAD {load}"] = "".join(traceback.format_exception(exc))
                health = asyncio.run(components.health())
                asyncio.run(components.stop())
                outputs[f"health under LOAD {load}"] = repr(health)
                target = components.get(self.component_name).describe_target()
                outputs[f"target under LOAD {load}"] = target
        outputs["log output"] = logs.getvalue()
        leaks = [where for where, text in outputs.items() if password in text]
        assert not leaks, f"the password appears in: {', '.join(leaks)}"
