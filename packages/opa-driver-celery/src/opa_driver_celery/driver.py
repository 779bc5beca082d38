"""The ``celery`` driver: its instance is a Celery app configured from the component's OPTS.

Celery is imported inside the methods only, so resolving the ``opa.drivers`` entry point
(``opa drivers``, or an app that configures no Celery component) stays cheap.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

from opa import (
    ComponentError,
    Driver,
    OpaError,
    PluginError,
    PluginManager,
    call_hook,
    get_component,
    get_plugin_manager,
    instrument_once,
)
from opa_driver_celery.options import SAFE_DEFAULTS, CeleryOptions, pickle_settings, uses_redis

SETUP_HOOK = "driver.celery.setup"
"""The hook every app passes through once configured; its implementation returns the app."""

TASKS_MODULE = "tasks"

_reloaded_in_process = False
"""Set once a tasks module was run again for a newer app (tests, embedding)."""
# Celery's package builds its attributes lazily on first import, which is not thread-safe:
# two components connecting at once (each in a thread) could see a half-made module.
_import_lock = threading.Lock()


class UnknownTaskError(OpaError, LookupError):
    """A task name that no loaded ``tasks.py`` registered; the message lists the known ones."""


def _running_manager() -> PluginManager | None:
    """The plugin manager of the running app or worker; None for a bare component.

    The driver compliance suite connects components with no plugins running: there are no
    tasks to find then.
    """
    try:
        return get_plugin_manager()
    except OpaError:
        return None


def task_packages(manager: PluginManager) -> list[str]:
    """The loaded plugins that are packages holding a ``tasks`` module, by import name.

    Covers plugins found on the plugin paths and those installed through the
    ``opa.plugins`` entry points alike, since both are in the manager's list.
    """
    packages: list[str] = []
    for plugin in manager.plugins:
        module = plugin.module
        if not hasattr(module, "__path__"):
            continue
        if importlib.util.find_spec(f"{module.__name__}.{TASKS_MODULE}") is not None:
            packages.append(module.__name__)
    return packages


class CeleryDriver(Driver):
    """A Celery app: broker and result backend from OPTS, JSON only, late acknowledgement.

    ``connect`` only builds the app; ``validate`` makes a real round trip to the broker.
    Once the component is connected, :func:`prepare_connected` (run at app start-up, and by
    the ``opa_worker_setup`` extension point in a worker or a shell) passes the app through
    the hook ``driver.celery.setup`` and imports the plugins' tasks, because a ``tasks.py``
    calls ``get_instance("celery")`` while it is imported.
    """

    name = "celery"
    is_async = False
    contract_version = 1
    Options = CeleryOptions
    default_ports: ClassVar[dict[str, int]] = {
        "amqp": 5672,
        "amqps": 5671,
        "pyamqp": 5672,
        "redis": 6379,
        "rediss": 6379,
    }
    legacy_names = ("opa.plugins.driver_celery.CeleryDriver",)
    # opa-stack's driver module also offered its hook classes, and celery's own Celery.
    legacy_exports: ClassVar[dict[str, str]] = {
        "opa.plugins.driver_celery.celery_setup_definition": (
            "opa_driver_celery.plugin:CelerySetupHook"
        ),
        "opa.plugins.driver_celery.celery_setup": "opa_driver_celery.plugin:DefaultCelerySetup",
        "opa.plugins.driver_celery.Celery": "celery:Celery",
    }

    opts: CeleryOptions

    def __init__(self, component: str, opts: Any) -> None:
        super().__init__(component, opts)
        self._configured = False
        self._tasks_loaded = False

    @classmethod
    def instrument_tracing(cls) -> None:
        """A span for each task sent (in the app) and each task run (in ``opa worker``); the
        sender's trace travels in the message headers, so the run continues it."""
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        instrument_once(CeleryInstrumentor())  # type: ignore[no-untyped-call]  # no hints there

    def connect(self) -> None:
        with _import_lock:
            from celery import Celery

        app = Celery(
            self.opts.APP_NAME,
            broker=self.opts.BROKER_URL,
            backend=self.opts.BACKEND_URL,
            set_as_current=True,
        )
        app.conf.update(SAFE_DEFAULTS)
        app.conf.update(self.opts.SETTINGS)
        self._configured = self._tasks_loaded = False
        self.instance = app

    def configure(self, manager: PluginManager) -> None:
        """Pass the connected app through the hook ``driver.celery.setup``, once per connect.

        Without opa-driver-celery's own plugin (entry points off, or filtered out) the hook
        is undefined, so no plugin can implement it either: the app stays as built.
        """
        if self._configured:
            return
        winner = manager.hook_winner(SETUP_HOOK)
        if winner is not None:
            self.instance = self._checked(call_hook(SETUP_HOOK, self.instance), winner)
        self._configured = True

    def _checked(self, configured: Any, winner: type) -> Any:
        from celery import Celery

        where = f"{winner.__module__}.{winner.__qualname__}"
        if not isinstance(configured, Celery):
            raise ComponentError(
                f"component {self.component!r}: hook {SETUP_HOOK} ({where}) returned "
                f"{type(configured).__name__}; it must return the Celery app it was given"
            )
        unsafe = pickle_settings(configured.conf)
        if unsafe:
            raise ComponentError(
                f"component {self.component!r}: hook {SETUP_HOOK} ({where}) set "
                f"{', '.join(unsafe)} to accept pickle, which opa's celery driver refuses"
            )
        return configured

    def validate(self) -> None:
        """Open a connection to the broker and let it go: fails, in time, when it is not there."""
        app = self.instance
        with app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=0, timeout=float(app.conf.broker_connection_timeout)
            )
            connection.default_channel  # noqa: B018 - opening the channel is the round trip

    def disconnect(self) -> None:
        self.instance.close()

    def urls(self) -> list[str]:
        """Every broker URL (kombu takes ``;``-separated fail-over lists) and the backend URL."""
        urls = [url.strip() for url in self.opts.BROKER_URL.split(";") if url.strip()]
        if self.opts.BACKEND_URL:
            urls.append(self.opts.BACKEND_URL)
        return urls

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        """What publishing to a lost broker, or reading from a lost Redis backend, raises.

        redis-py is imported only for a Redis backend, which the options refuse unless it
        is installed (the ``[redis]`` extra); the base install serves RabbitMQ without it.
        """
        from kombu.exceptions import OperationalError

        errors: list[type[Exception]] = [OperationalError]
        if uses_redis(self.opts.BACKEND_URL or ""):
            from redis.exceptions import ConnectionError, TimeoutError

            errors += [ConnectionError, TimeoutError]
        return tuple(errors)

    def load_tasks(self) -> None:
        """Import the ``tasks`` module of every plugin package that has one, once.

        Needs the component connected: a ``tasks.py`` asks for ``get_instance("celery")``
        at import time. :func:`prepare_connected` calls it (a worker before it consumes, an
        app at start-up); otherwise the first :meth:`send_task` does.
        """
        if self._tasks_loaded:
            return
        global _reloaded_in_process
        app = self._connected_app()
        manager = _running_manager()
        for package in task_packages(manager) if manager is not None else []:
            module_name = f"{package}.{TASKS_MODULE}"
            try:
                loaded = sys.modules.get(module_name)
                if loaded is None:
                    importlib.import_module(module_name)
                else:
                    # Bound to an earlier app of this process (tests, embedding): run it
                    # again, so its tasks and its get_instance("celery") are this app's.
                    importlib.reload(loaded)
                    _reloaded_in_process = True
            except Exception as exc:
                raise PluginError(
                    f"component {self.component!r}: the tasks of plugin package {package!r} "
                    f"failed to import: {type(exc).__name__}: {exc}"
                ) from exc
        with warnings.catch_warnings():
            if _reloaded_in_process:
                # Celery hands every @task ever run in the process to each app it finalizes,
                # so a reloaded module's runs all register their names again: the same code
                # with the same module globals, not the collision Celery warns about.
                warnings.filterwarnings("ignore", message="Task name .* is already registered")
            app.finalize(auto=True)
        self._tasks_loaded = True

    def send_task(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Enqueue the registered task *name*; an unknown name raises :class:`UnknownTaskError`.

        Celery's own ``send_task`` publishes any name, and a worker that does not know it
        drops the message, so the caller would wait for a result that never comes.
        """
        self.load_tasks()
        app = self._connected_app()
        if name not in app.tasks:
            known = sorted(task for task in app.tasks if not task.startswith("celery."))
            raise UnknownTaskError(
                f"component {self.component!r} has no task named {name!r}; "
                f"registered tasks: {', '.join(known) or 'none'}"
            )
        return app.send_task(name, args=list(args), kwargs=kwargs or {}, **options)

    def _connected_app(self) -> Any:
        if self.instance is not None:
            return self.instance
        # Not connected: the component's own error says why (skipped, failed, stopped).
        return get_component(self.component).instance


def prepare_connected(manager: PluginManager) -> None:
    """For each connected celery component of *manager*: run the setup hook, load the tasks."""
    for component in manager.components:
        driver = component.driver
        if isinstance(driver, CeleryDriver) and driver.instance is not None:
            driver.configure(manager)
            driver.load_tasks()
