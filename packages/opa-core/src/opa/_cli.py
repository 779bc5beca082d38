"""The ``opa`` command: serve, run a shell, and inspect drivers, settings and components.

Each command starts through :func:`opa.bootstrap`. Installed extensions add commands
(``opa_cli_commands``: ``opa worker`` comes from opa-driver-celery).

Every message goes through :func:`opa._masking.mask_secrets`, and every opa error ends the
command with one ``error: ...`` line and exit status 1 instead of a traceback.
"""

from __future__ import annotations

import asyncio
import code
import importlib
import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import click
import yaml

from opa import _runtime as runtime
from opa._bootstrap import bootstrap, settings_and_logging
from opa._components import Status
from opa._config import typed
from opa._drivers import driver_is_async
from opa._entry_errors import error_line
from opa._errors import DriverError, OpaError, PluginError
from opa._extensions import extensions
from opa._known_drivers import COMMANDS, command_hint, install_hint
from opa._log import log
from opa._masking import mask_secrets, mask_value
from opa._old_settings import refuse_worker_mode

LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical")


class CliError(click.ClickException):
    """Ends a command with one masked ``error: ...`` line and exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(error_line(self.format_message()), err=True)


class OpaGroup(click.Group):
    """opa's own commands plus those extensions add (``opa_cli_commands``); every
    :class:`OpaError` a command raises becomes a :class:`CliError`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OpaError as exc:
            raise CliError(str(exc)) from exc

    def extension_commands(self) -> dict[str, click.Command]:
        """The commands each installed extension adds, by name; a clash is an error."""
        found: dict[str, click.Command] = {}
        added_by: dict[str, str] = {}
        for implementation in extensions().hook.opa_cli_commands.get_hookimpls():
            commands = cast("list[click.Command] | None", implementation.function())
            for command in commands or []:
                name = command.name or ""
                if name in self.commands or name in found:
                    first = "opa-core" if name in self.commands else added_by[name]
                    raise PluginError(
                        f"extension {implementation.plugin_name!r} adds the command "
                        f"'opa {name}', which {first} adds already"
                    )
                found[name], added_by[name] = command, f"extension {implementation.plugin_name!r}"
        return found

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            command = self.extension_commands().get(cmd_name)
        if command is None and cmd_name in COMMANDS:
            command = _not_installed(cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        # Commands of known distributions are listed even when not installed: running one
        # says what to install.
        names = {*super().list_commands(ctx), *COMMANDS}
        try:
            names.update(self.extension_commands())
        except OpaError as exc:
            # --help runs outside invoke(); it still lists opa's own commands.
            click.echo(error_line(str(exc)), err=True)
        return sorted(names)


def _not_installed(name: str) -> click.Command:
    """Stands in for ``opa <name>`` when the distribution that adds it is not installed."""

    def fail(args: tuple[str, ...]) -> None:
        raise CliError(
            f"'opa {name}' comes from {COMMANDS[name]}, which is not installed; "
            f"install it with: {command_hint(name)}"
        )

    return click.Command(
        name,
        callback=fail,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
        help=f"Added by {COMMANDS[name]} (not installed).",
    )


def echo(text: str = "", err: bool = False) -> None:
    """Print *text* with credentials masked, whatever a driver or setting put in it."""
    click.echo(mask_secrets(text), err=err)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns; the last one is not padded, so long details stay readable."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


def _export_choice(name: str, value: Any) -> None:
    # Environment variables, not arguments, so uvicorn's import of opa.main (and its
    # reloader's subprocesses) resolve the same settings as this process.
    if value is not None:
        os.environ[name] = str(value)


@click.group(cls=OpaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--settings-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Settings folder (sets OPA_SETTINGS_DIR).",
)
@click.option("--env", "env_name", metavar="NAME", help="Environment, e.g. dev (sets OPA_ENV).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False))
def cli(settings_dir: Path | None, env_name: str | None, log_level: str | None) -> None:
    """opa: a FastAPI platform where everything is a plugin."""
    _export_choice("OPA_SETTINGS_DIR", settings_dir.resolve() if settings_dir else None)
    _export_choice("OPA_ENV", env_name)
    _export_choice("OPA_LOG_LEVEL", log_level.upper() if log_level else None)


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


@cli.command()
@click.option("--host", help="Interface to bind (default: setting HOST).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to bind (default: setting PORT).")
@click.option("--reload/--no-reload", default=None, help="Restart on code changes.")
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    help="Serving processes on the one port (default: setting WORKERS).",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False))
def run(
    host: str | None,
    port: int | None,
    reload: bool | None,
    workers: int | None,
    log_level: str | None,
) -> None:
    """Serve the app; configuration and start-up errors end it with one line and status 1."""
    from opa._serve import serve

    _export_choice("OPA_LOG_LEVEL", log_level.upper() if log_level else None)
    refuse_worker_mode(os.environ)
    # Surfaces configuration and plugin errors as one line here, not as uvicorn's traceback.
    settings = bootstrap().settings
    values = typed(settings)
    # uvicorn re-raises the SIGTERM or SIGINT it handled once it has shut down cleanly; a
    # clean shutdown on request is a success, so that re-raised signal ends the process with 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    reloading = values.RELOAD if reload is None else reload
    processes = values.WORKERS if workers is None else workers
    if reloading and processes > 1:
        # uvicorn would quietly serve one reloading process instead.
        raise CliError(
            f"reload and {processes} workers cannot be combined: run with --no-reload "
            "(RELOAD: false) or with --workers 1"
        )
    if port is not None and port == values.METRICS_PORT:
        # The settings model refused METRICS_PORT equal to PORT; --port comes after it.
        raise CliError(
            f"--port {port} is METRICS_PORT too; serve the app on another port, or set "
            "METRICS_PORT to another one (OPA_METRICS_PORT)"
        )
    serve(
        settings,
        host=host or values.HOST,
        port=port if port is not None else values.PORT,
        reload=reloading,
        log_level=values.LOG_LEVEL.lower(),
        workers=processes,
    )


@cli.command()
def shell() -> None:
    """An interactive Python shell with plugins loaded and sync components connected."""
    manager = bootstrap(connect_sync=True)
    namespace: dict[str, Any] = {
        "get_instance": runtime.get_instance,
        "get_component": runtime.get_component,
        "call_hook": runtime.call_hook,
        "config": runtime.config,
        "log": log,
        "manager": manager,
    }
    banner = f"opa shell; names: {', '.join(namespace)}"
    # The module name log lines report for code typed at the prompt (else "None:1").
    namespace["__name__"] = "__console__"
    try:
        try:
            ipython: Any = importlib.import_module("IPython")
        except ImportError:
            code.interact(banner=banner, local=namespace)
        else:
            ipython.start_ipython(argv=[], user_ns=namespace)
    finally:
        manager.components.stop_sync()


@cli.command()
def drivers() -> None:
    """Installed and plugin drivers, then configured drivers that are missing."""
    manager = bootstrap(resolve=False)
    registry = manager.drivers
    rows: list[list[str]] = []
    for name, installed in sorted(registry.installed.items()):
        try:
            is_async, _ = registry.describe(name)
            flag, note = ("async" if is_async else "sync"), ""
        except DriverError as exc:
            flag, note = "?", f"error: {exc}"
        rows.append([name, installed.distribution, installed.version, flag, note])
    for plugin in manager.plugins:
        for cls in plugin.drivers:
            flag = "async" if driver_is_async(cls) else "sync"
            rows.append([cls.name.lower(), f"plugin {plugin.identity}", "-", flag, ""])
    if rows:
        echo(table(["driver", "distribution", "version", "async", "note"], rows))
    else:
        echo("no drivers installed")
    missing: list[list[str]] = []
    for component in manager.components:
        spec = component.spec
        try:
            found = spec.load == "no" or registry.get(spec.driver) is not None
        except DriverError:
            found = True  # installed but broken: its row above says why
        if not found:
            hint = install_hint(spec.driver) or "no known distribution"
            missing.append([spec.name, spec.driver, spec.load, hint])
    if missing:
        echo("\nconfigured drivers that are not installed:")
        echo(table(["component", "driver", "load", "install"], missing))


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def config_command(as_json: bool) -> None:
    """The resolved settings, with secrets masked."""
    resolved = settings_and_logging().as_dict()
    # dynaconf's own switch, which opa always sets off (opa reads no .env file): no setting.
    resolved.pop("LOAD_DOTENV", None)
    masked = {str(key): mask_value(str(key), value) for key, value in resolved.items()}
    if as_json:
        echo(json.dumps(masked, indent=2, sort_keys=True, default=str))
    else:
        echo(yaml.safe_dump(masked, sort_keys=True, default_flow_style=False).rstrip())


@cli.command()
def check() -> None:
    """Connect every component once and report; exit 1 when one that must work failed."""
    manager = bootstrap(resolve=False)
    reports = asyncio.run(manager.components.check())
    if not reports:
        echo("no components configured")
        return
    headers = ["component", "driver", "load", "status", "target", "detail"]
    rows = [[r.name, r.driver, r.load, r.status, r.target, r.detail] for r in reports]
    echo(table(headers, rows))
    # A LOAD: yes component that did not connect, or an auto one that was reachable and
    # still failed, is FAILED; an unreachable or uninstalled auto one is only SKIPPED.
    failed = [r.name for r in reports if r.status == Status.FAILED.value]
    if failed:
        raise CliError(f"component check failed: {', '.join(failed)}")


@cli.command("new-driver")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to create opa-driver-NAME in.",
)
@click.option("--async/--sync", "is_async", default=False, help="Driver flavour (default sync).")
def new_driver(name: str, directory: Path, is_async: bool) -> None:
    """Generate the driver package opa-driver-NAME, ready to install and pass its tests."""
    from opa._scaffold import create_driver_package

    target = create_driver_package(name, directory, is_async=is_async)
    echo(f"created {target}")
    echo(f"next: cd {target} && pip install -e '.[test]' && pytest")


def main() -> None:
    """Entry point of the ``opa`` script."""
    cli(prog_name="opa")
