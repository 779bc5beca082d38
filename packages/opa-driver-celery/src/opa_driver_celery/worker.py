"""Worker mode: a Celery worker on the same plugins and settings as the app.

``opa worker [celery worker options]`` calls :func:`main`; ``celery -A
opa_driver_celery.worker worker`` (or ``flower``) reads the module attribute ``app``. Either
way the worker process loads the plugins, connects the sync components (the async ones
have no event loop here), imports the plugins' tasks and only then starts consuming. Each
prefork child connects its own components again after the fork, because sockets shared
with the parent process would mix both processes' traffic; the Celery app itself is kept,
since Celery resets its own connections in a child.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opa import _runtime as runtime
from opa._components import Component, Components, Status
from opa._config import load_settings
from opa._errors import OpaError
from opa._log import setup_logging
from opa._masking import mask_secrets
from opa._plugin_manager import PluginManager
from opa_driver_celery.driver import CeleryDriver


class WorkerError(OpaError):
    """The worker cannot start: no usable celery component, or its tasks do not import."""


class _MaskingFormatter(logging.Formatter):
    """Formats as the formatter it wraps does, then masks credentials."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(self.inner.format(record))


_app: Any = None
_child_components: list[Components] = []


def celery_component(manager: PluginManager) -> Component:
    """The one component with ``DRIVER: celery``, ready to connect; else why not."""
    found = [c for c in manager.components if c.spec.driver == CeleryDriver.name]
    if not found:
        raise WorkerError(
            "no component with DRIVER: celery is configured, so there is no queue to consume; "
            "add one under OPTIONAL_COMPONENTS (see the opa-driver-celery README)"
        )
    if len(found) > 1:
        names = ", ".join(repr(c.name) for c in found)
        raise WorkerError(
            f"several celery components are configured ({names}); a worker consumes for "
            "one of them: set LOAD: no on the others for this worker"
        )
    component = found[0]
    if component.status is not Status.PENDING:
        raise WorkerError(
            f"component {component.name!r} is {component.status.value} ({component.detail}); "
            "a worker needs it connected"
        )
    return component


def build_worker_app() -> Any:
    """Load plugins, connect the sync components and the tasks; return the Celery app.

    Once per process: it also connects the handlers of Celery's worker signals.

    Raises :class:`~opa._errors.OpaError` (a masked, one-line message) when the worker
    cannot run; components connected so far are disconnected first.
    """
    settings = load_settings()
    setup_logging(str(settings.get("LOG_LEVEL", "INFO")))
    manager = PluginManager(settings)
    manager.load(sync_only=True)
    runtime.activate(manager)
    component = celery_component(manager)
    manager.components.start_sync()
    try:
        if component.status is not Status.OK:
            raise WorkerError(
                f"component {component.name!r} ({component.describe_target()}) was "
                f"{component.status.value}: {component.detail}; the worker has no broker"
            )
        assert isinstance(component.driver, CeleryDriver)
        component.driver.load_tasks()
    except BaseException:
        manager.components.stop_sync()
        raise
    _connect_signals(manager, component.name)
    return component.instance


def _connect_signals(manager: PluginManager, celery_name: str) -> None:
    from celery import signals

    def connect_after_fork(**_: Any) -> None:
        """In a prefork child: connect every sync component but the Celery one afresh."""
        _child_components.append(manager.components.reconnect_after_fork(keep=[celery_name]))

    def disconnect_child(**_: Any) -> None:
        for components in _child_components:
            components.stop_sync()

    def disconnect_worker(**_: Any) -> None:
        manager.components.stop_sync()

    def mask_celery_logs(logger: logging.Logger, **_: Any) -> None:
        """Celery keeps its own handlers (fast, and `-l`/`-f` keep their meaning); their
        lines pass through opa's masking, like every other log line of opa."""
        for handler in logger.handlers:
            handler.setFormatter(_MaskingFormatter(handler.formatter or logging.Formatter()))

    # Strong references (weak=False): the handlers are closures that nothing else holds.
    signals.worker_process_init.connect(connect_after_fork, weak=False)
    signals.worker_process_shutdown.connect(disconnect_child, weak=False)
    signals.worker_shutdown.connect(disconnect_worker, weak=False)
    signals.after_setup_logger.connect(mask_celery_logs, weak=False)
    signals.after_setup_task_logger.connect(mask_celery_logs, weak=False)


def _worker_app() -> Any:
    global _app
    if _app is None:
        _app = build_worker_app()
    return _app


def _report(exc: OpaError) -> None:
    print(f"error: {mask_secrets(str(exc))}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """Run ``celery worker`` with *argv* (Celery 5's worker options); the exit status."""
    import click

    try:
        app = _worker_app()
    except OpaError as exc:
        _report(exc)
        return 1
    try:
        status = app.start(["worker", *argv])
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 1
    return int(status or 0)


def __getattr__(name: str) -> Any:
    # `celery -A opa_driver_celery.worker` looks up `app`; build it only then, so importing
    # this module (as `opa worker` does before parsing its arguments) connects nothing.
    if name == "app":
        try:
            return _worker_app()
        except OpaError as exc:
            # `celery -A` would print a traceback; the one line says all there is to say.
            _report(exc)
            raise SystemExit(1) from None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
