"""Worker mode: a Celery worker on the same plugins and settings as the app.

``opa worker [celery worker options]`` (the command this distribution's extension adds)
runs :func:`run_worker`; ``celery -A opa.worker`` asks the extension's ``opa_worker_app``,
and ``celery -A opa_driver_celery.worker worker`` (or ``flower``) reads the module attribute
``app``. Each way starts with :func:`opa.bootstrap` in its worker form: plugins loaded, the
sync components connected (the async ones have no event loop here), the setup hook run and
the plugins' tasks imported, and only then does Celery consume. Each prefork child connects
its own components again after the fork, because sockets shared with the parent process
would mix both processes' traffic; the Celery app itself is kept, since Celery resets its
own connections in a child. With opa's ``METRICS`` on, the worker serves its tasks'
metrics on ``METRICS_WORKER_PORT`` (:mod:`opa_driver_celery.metrics`).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from opa import Component, OpaError, PluginManager, Status, bootstrap, mask_secrets
from opa_driver_celery.driver import CeleryDriver
from opa_driver_celery.metrics import start_task_metrics


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
_child_components: list[Any] = []


def celery_component(manager: PluginManager) -> Component:
    """The one connected component with ``DRIVER: celery``; else why there is none."""
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
    if component.status is not Status.OK:
        raise WorkerError(
            f"component {component.name!r} ({component.describe_target()}) was "
            f"{component.status.value}: {component.detail}; the worker has no broker"
        )
    return component


def build_worker_app(manager: PluginManager) -> Any:
    """The Celery app of a manager bootstrapped for a worker (``connect_sync=True``).

    Connects the handlers of Celery's worker signals, so once per process. Raises
    :class:`~opa.OpaError` (a masked, one-line message) when the worker cannot run; the
    components connected so far are disconnected first.
    """
    try:
        component = celery_component(manager)
    except BaseException:
        manager.components.stop_sync()
        raise
    _connect_signals(manager, component.name)
    return component.instance


def worker_app(manager: PluginManager | None = None) -> Any:
    """This process's worker app, built on *manager* or on a fresh worker bootstrap."""
    global _app
    if _app is None:
        _app = build_worker_app(manager or bootstrap(connect_sync=True))
    return _app


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

    def serve_metrics(**_: Any) -> None:
        """Before the pool forks: with METRICS on, task metrics on METRICS_WORKER_PORT."""
        try:
            start_task_metrics(manager)
        except OpaError as exc:
            # Celery logs and forgets what a signal handler raises; a worker whose metrics
            # cannot be served stops instead, with one line, as at any other start-up error.
            _report(exc)
            manager.components.stop_sync()
            raise SystemExit(1) from None

    def mask_celery_logs(logger: logging.Logger, **_: Any) -> None:
        """Celery keeps its own handlers (fast, and `-l`/`-f` keep their meaning); their
        lines pass through opa's masking, like every other log line of opa."""
        for handler in logger.handlers:
            handler.setFormatter(_MaskingFormatter(handler.formatter or logging.Formatter()))

    # Strong references (weak=False): the handlers are closures that nothing else holds.
    signals.worker_init.connect(serve_metrics, weak=False)
    signals.worker_process_init.connect(connect_after_fork, weak=False)
    signals.worker_process_shutdown.connect(disconnect_child, weak=False)
    signals.worker_shutdown.connect(disconnect_worker, weak=False)
    signals.after_setup_logger.connect(mask_celery_logs, weak=False)
    signals.after_setup_task_logger.connect(mask_celery_logs, weak=False)


def _report(exc: OpaError) -> None:
    print(f"error: {mask_secrets(str(exc))}", file=sys.stderr)


def run_worker(argv: list[str]) -> int:
    """Run ``celery worker`` with *argv* (Celery 5's worker options); the exit status.

    An opa error while starting is raised, for the ``opa`` command to print as one line.
    """
    app = worker_app()
    try:
        status = app.start(["worker", *argv])
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 1
    return int(status or 0)


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker(args: tuple[str, ...]) -> None:
    """A Celery worker on the same plugins and settings; arguments go to the worker."""
    status = run_worker(list(args))
    if status:
        raise SystemExit(status)


def __getattr__(name: str) -> Any:
    # `celery -A opa_driver_celery.worker` looks up `app`; build it only then, so importing
    # this module (as `opa worker` does before parsing its arguments) connects nothing.
    if name == "app":
        try:
            return worker_app()
        except OpaError as exc:
            # `celery -A` would print a traceback; the one line says all there is to say.
            _report(exc)
            raise SystemExit(1) from None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
