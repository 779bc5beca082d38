"""The compliance suite's outage cases: the driver behind a :class:`TcpProxy` the suite controls.

Each case stages one thing that happens to a backend in production (connections dropped, a
host that accepts and never answers, a login refused, the backend coming back) and checks
what an app would do with the driver. A case is left out only when the driver's suite
declares it in ``opt_outs`` with a reason, which the test report shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI

from opa._components import Component
from opa._drivers import Driver, driver_is_async
from opa._errors import ComponentError
from opa._masking import mask_secrets
from opa.testing._ports import LOCALHOST
from opa.testing._processes import wait_for
from opa.testing._proxy import TcpProxy, open_sockets
from opa.testing._services import skip_or_fail
from opa.testing._suite_kit import SuiteBase, within

ROUTE = "/opa-compliance/round-trip"
CONCURRENCY = 32
NO_TIMEOUTS = (
    ": the driver waits on a host that never answers; pass the client library's own connect "
    "and socket timeouts from its options, and list those options in timeout_options"
)


@contextlib.contextmanager
def served(app: FastAPI, bound: float) -> Iterator[tuple[str, int]]:
    """*app* served by uvicorn on a port of 127.0.0.1 from a thread, as in production; its
    lifespan connects the components, and leaving the block stops it."""
    import uvicorn

    config = uvicorn.Config(app, host=LOCALHOST, port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="opa-compliance-app", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), bound, "the app to start")
        if not server.started:
            pytest.fail("the app did not start; its log above says why", pytrace=False)
        port: int = server.servers[0].sockets[0].getsockname()[1]
        yield LOCALHOST, port
    finally:
        server.should_exit = True
        thread.join(bound)


def token() -> str:
    """A value of one round trip's own, for its answer to carry back."""
    return f"opa-{secrets.token_hex(6)}"


def _path(error: BaseException) -> str:
    cls = type(error)
    return f"{cls.__module__}.{cls.__qualname__}"


def assert_outage(driver: Driver | None, error: BaseException, when: str) -> None:
    """Fail, saying what to add, unless *driver* counts *error* as the backend being gone."""
    assert driver is not None
    if isinstance(error, Exception) and driver.is_unavailable(error):
        return
    cls = type(driver).__name__
    said = mask_secrets(f"{type(error).__name__}: {error}")
    pytest.fail(
        f"{cls}.unavailable_errors() does not cover {_path(error)}, which {when} raised "
        f"({said}); the app answers such a request 500 instead of 503, and the breaker never "
        f"hears of the outage. Add {_path(error)} (or the client library's base class of it) "
        "to the tuple unavailable_errors() returns; if that class also carries errors that "
        "are no outage (a bad query), override is_unavailable(error) to tell them apart.",
        pytrace=False,
    )


class OutageCases(SuiteBase):
    """The outage cases of :class:`opa.testing.DriverComplianceSuite`."""

    @contextlib.contextmanager
    def outage_proxy(
        self, live_options: dict[str, Any]
    ) -> Iterator[tuple[TcpProxy, dict[str, Any]]]:
        """A proxy in front of the live backend, and ``OPTS`` that go through it."""
        components = self.make_components("yes", live_options)
        components.resolve()
        driver = components.get(self.component_name).driver
        targets = driver.reachability_targets() if driver is not None else []
        if len(targets) != 1:
            pytest.fail(
                f"live_options reach {len(targets)} hosts ({targets}); the outage cases put "
                "one proxy before one host: give live_options a single host, or override "
                "outage_proxy() to fail every host at once",
                pytrace=False,
            )
        with TcpProxy(*targets[0]) as proxy:
            yield proxy, self.proxied_options(live_options, proxy)

    def _round_trip_route(self, app: FastAPI, errors: list[BaseException]) -> None:
        """Add a route that makes one round trip and keeps the error it met, if any."""
        components = app.state.opa.components
        name = self.component_name

        if driver_is_async(self.driver_class()):

            async def async_round_trip() -> str:
                try:
                    await self.call(components.get(name), token())
                except BaseException as error:
                    errors.append(error)
                    raise
                return "ok"

            app.add_api_route(ROUTE, async_round_trip)
            return

        def round_trip() -> str:
            try:
                self.sync_call(components.get(name), token())
            except BaseException as error:
                errors.append(error)
                raise
            return "ok"

        app.add_api_route(ROUTE, round_trip)

    def _get(self, address: tuple[str, int], proxy: TcpProxy, what: str) -> tuple[int, str]:
        """GET the round-trip route: (status, body); the test fails (not hangs) past the
        outage bound."""
        bound = self.outage_bound() + self.timeout
        connection = http.client.HTTPConnection(*address, timeout=bound)
        try:
            connection.request("GET", ROUTE)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        except TimeoutError:
            proxy.close()  # frees the request, so the app can stop
            pytest.fail(f"{what} did not finish within {bound:g}s{NO_TIMEOUTS}", pytrace=False)
        finally:
            connection.close()

    # The cases.

    def test_opt_outs_name_cases_and_give_reasons(self) -> None:
        """Every declared opt-out names a case of the suite and says why it cannot apply."""
        self.check_opt_outs()

    def test_dropped_connections_answer_503(self, live_options: dict[str, Any]) -> None:
        """A request whose call meets dropped connections answers 503: the driver names the
        error among its outages."""
        self.unless_opted_out("dropped-connections")
        errors: list[BaseException] = []
        with self.outage_proxy(live_options) as (proxy, opts):
            app = self.make_app("yes", opts)
            self._round_trip_route(app, errors)
            with served(app, self.timeout * 2 + self.slack) as address:
                status, text = self._get(address, proxy, "a request to the live backend")
                assert status == 200, f"before the outage: {status} {text}"
                proxy.drop()
                errors.clear()
                status, text = self._get(address, proxy, "a request while connections drop")
        if status == 503:
            assert repr(self.component_name) in json.loads(text)["detail"], text
            return
        if not errors:
            pytest.fail(
                f"a request answered {status} while the proxy dropped every "
                "connection: round_trip() must make a real call to the server",
                pytrace=False,
            )
        driver = app.state.opa.components.get(self.component_name).driver
        assert_outage(driver, errors[-1], "a call through the instance over dropped connections")
        pytest.fail(f"the app answered {status}: {text}", pytrace=False)

    def test_connecting_to_a_silent_host_ends_in_time(self, live_options: dict[str, Any]) -> None:
        """Against a host that accepts and never answers, start-up fails within the driver's
        own timeouts, not only opa's TIMEOUT."""
        self.unless_opted_out("silent-host")
        bound = self.outage_bound()
        with self.outage_proxy(live_options) as (proxy, opts):
            proxy.black_hole()
            # opa's TIMEOUT lies beyond the bound: only the driver's own timeouts can end it.
            components = self.make_components("yes", opts, timeout=bound * 2)
            with pytest.raises(ComponentError) as caught:
                start = components.start()
                what = "connecting to a host that accepts and never answers"
                asyncio.run(within(bound, what, start, NO_TIMEOUTS, on_expiry=proxy.close))
        assert self.component_name in str(caught.value), caught.value

    def test_a_call_to_a_silent_host_ends_in_time(self, live_options: dict[str, Any]) -> None:
        """A call on a host that stopped answering ends within the driver's timeouts, with an
        error the driver counts as an outage."""
        self.unless_opted_out("silent-host")
        bound = self.outage_bound()
        with self.outage_proxy(live_options) as (proxy, opts):
            components = self.make_components("yes", opts, timeout=bound * 2)
            component = components.get(self.component_name)

            async def scenario() -> Exception | None:
                await components.start()
                try:
                    await self.call(component, token())
                    proxy.black_hole()
                    what = "a call to a host that stopped answering"
                    call = self.call(component, token())
                    await within(bound, what, call, NO_TIMEOUTS, on_expiry=proxy.close)
                except Exception as error:
                    return error
                finally:
                    if not proxy.closed:
                        proxy.restore()  # a disconnect that talks to the server may finish
                    await components.stop()
                return None

            error = asyncio.run(scenario())
        if error is not None:
            assert_outage(component.driver, error, "a call to a host that stopped answering")

    def test_calls_succeed_again_once_the_backend_is_back(
        self, live_options: dict[str, Any]
    ) -> None:
        """After an outage, calls through the same instance succeed with no reconnect by hand."""
        self.unless_opted_out("recovery")
        bound = self.outage_bound()
        with self.outage_proxy(live_options) as (proxy, opts):
            components = self.make_components("yes", opts)
            component = components.get(self.component_name)

            async def scenario() -> None:
                await components.start()
                try:
                    await self.call(component, token())
                    proxy.drop()
                    with contextlib.suppress(Exception):  # what it raises is another case's
                        what = "a call while the backend is down"
                        await within(bound, what, self.call(component, token()), NO_TIMEOUTS)
                    proxy.restore()
                    await self._until_answered(component, bound)
                    for _ in range(3):
                        await self.call(component, token())
                finally:
                    await components.stop()

            asyncio.run(scenario())

    async def _until_answered(self, component: Component, bound: float) -> None:
        """Call until a call succeeds; fail with the last error after *bound* seconds."""
        deadline = time.monotonic() + bound
        while True:
            try:
                await within(
                    bound, "a call after the backend came back", self.call(component, token())
                )
                return
            except Exception as error:
                if time.monotonic() > deadline:
                    said = mask_secrets(f"{type(error).__name__}: {error}")
                    pytest.fail(
                        f"calls still fail {bound:g}s after the backend came back ({said}): "
                        "the instance must reconnect by itself, as the client library's pool "
                        "does when a connection breaks",
                        pytrace=False,
                    )
                await asyncio.sleep(0.05)

    def test_a_refused_login_fails_start_up_and_leaves_no_socket(
        self, live_options: dict[str, Any]
    ) -> None:
        """A server refusing the login or database fails start-up with the masked URL, and
        every socket the driver opened is closed."""
        self.unless_opted_out("refused-login")
        password = f"pw-{secrets.token_hex(8)}"
        opts = self.refused_options(live_options, password)
        assert password in repr(opts), "refused_options() must embed the password it is given"
        before = open_sockets()
        if before is None:
            skip_or_fail("counting the process's sockets needs Linux's /proc/self/fd")
        components = self.make_components("yes", opts)
        with pytest.raises(ComponentError) as caught:
            what = "start-up against a server refusing the login"
            asyncio.run(within(self.timeout + self.slack, what, components.start()))
        message = str(caught.value)
        assert self.component_name in message, message
        assert password not in message, f"the password is in the error: {message}"
        driver = components.get(self.component_name).driver
        for url in driver.urls() if driver is not None else []:
            assert mask_secrets(url) in message, f"the error does not say which server: {message}"
        deadline = time.monotonic() + self.timeout + self.slack
        while (now := open_sockets() or 0) > before:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{now - before} socket(s) the driver opened are still open after the "
                    "refused start-up: close the client in disconnect(), and in connect() "
                    "when it fails before setting self.instance",
                    pytrace=False,
                )
            time.sleep(0.05)

    def test_the_client_library_is_imported_on_connect_only(self) -> None:
        """Loading the driver's entry point imports none of ``client_libraries``."""
        self.unless_opted_out("client-import")
        if not self.client_libraries:
            pytest.fail(
                f"{type(self).__name__} declares no client_libraries: name the top-level "
                "modules of the client library, e.g. ('redis',), so the suite can check "
                "they wait for connect()",
                pytrace=False,
            )
        module = self.driver_class().__module__
        script = (
            "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
            "print(json.dumps(sorted({name.partition('.')[0] for name in sys.modules})))"
        )
        command = [sys.executable, "-c", script, module]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        imported = set(json.loads(done.stdout.splitlines()[-1])) & set(self.client_libraries)
        assert not imported, (
            f"importing {module}, which the opa.drivers entry point loads, imports "
            f"{', '.join(sorted(imported))}; import the client library inside connect()"
        )

    def test_two_components_on_one_driver_share_no_state(
        self, live_options: dict[str, Any]
    ) -> None:
        """Two components of this driver get instances of their own; closing one leaves the
        other working."""
        self.unless_opted_out("two-components")
        other = f"{self.component_name}_other"
        components = self.make_components("yes", live_options, names=[other])
        first, second = components.get(self.component_name), components.get(other)

        async def scenario() -> None:
            await components.start()
            try:
                assert first.instance is not second.instance, (
                    "two components hand out one instance: keep the client on self, never on "
                    "the class or the module"
                )
                await self.call(first, token())
                await self.call(second, token())
                await components._disconnect(first)
                try:
                    await self.call(second, token())
                except Exception as error:
                    said = mask_secrets(f"{type(error).__name__}: {error}")
                    pytest.fail(
                        f"disconnecting component {first.name!r} broke {second.name!r} ({said}): "
                        "the two share state; keep each client on its driver object",
                        pytrace=False,
                    )
            finally:
                await components.stop()

        asyncio.run(within(self.timeout * 2 + self.slack, "two components", scenario()))

    def test_the_instance_serves_concurrent_calls(self, live_options: dict[str, Any]) -> None:
        """32 calls at once through one instance all succeed with their own answers: from 32
        threads for a sync driver (routes share it across the thread pool), 32 tasks for an
        async one."""
        self.unless_opted_out("concurrent-use")
        components = self.make_components("yes", live_options)
        component = components.get(self.component_name)
        bound = self.timeout * 2 + self.slack
        if driver_is_async(self.driver_class()):

            async def scenario() -> list[Any]:
                await components.start()
                try:
                    calls = [self.call(component, token()) for _ in range(CONCURRENCY)]
                    return await asyncio.gather(*calls, return_exceptions=True)
                finally:
                    await components.stop()

            outcomes = asyncio.run(within(bound, "32 concurrent calls", scenario()))
        else:
            outcomes = self._from_threads(components, component, bound)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            first = mask_secrets(f"{type(failures[0]).__name__}: {failures[0]}")
            pytest.fail(
                f"{len(failures)} of {CONCURRENCY} concurrent calls failed, first: {first}. "
                "The instance is shared by every request at once: make it safe for that (a "
                "connection pool, or a lock around one connection)",
                pytrace=False,
            )

    def _from_threads(self, components: Any, component: Component, bound: float) -> list[Any]:
        barrier = threading.Barrier(CONCURRENCY)

        def one() -> Any:
            barrier.wait(bound)
            return self.sync_call(component, token())

        components.start_sync()
        try:
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                futures = [pool.submit(one) for _ in range(CONCURRENCY)]
                outcomes: list[Any] = []
                for future in futures:
                    try:
                        outcomes.append(future.result(bound))
                    except Exception as error:
                        outcomes.append(error)
                return outcomes
        finally:
            components.stop_sync()
