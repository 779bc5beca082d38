"""Processes a test starts and the waits around them, written once for every package.

A test that runs ``opa run``, a Celery worker or a benchmark's server starts it in a session
of its own, with an environment free of the machine's opa settings (:func:`clean_environ`)
and its output in a log file (:class:`LoggedProcess`), polls until it answers
(:func:`wait_for`, :func:`http_answers`), kills it with its children at the end, and removes
the Redis keys it wrote (:func:`delete_keys`), never flushing a shared database. Only the
standard library is imported here.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol, TypeVar

from opa.testing._closing import Closing

T = TypeVar("T")

KILL_TIMEOUT = 10.0
"""How long a killed process group may take to be reaped."""

LOG_TAIL = 3000
"""How much of a log an error message quotes."""


_SETTINGS_PREFIXES = ("OPA_", "DYNACONF_")


def is_settings_variable(name: str) -> bool:
    """Tell whether an environment variable would change the settings opa loads."""
    upper = name.upper()
    return upper == "ENV" or upper.startswith(_SETTINGS_PREFIXES) or upper.endswith("_FOR_DYNACONF")


def clean_environ(settings_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment for a child opa process, free of the machine's settings.

    Every variable that would change opa's settings is left out; *settings_dir* becomes
    ``OPA_SETTINGS_DIR``; output is unbuffered, so a log shows what happened up to a kill;
    *extra* is added last.
    """
    env = {name: value for name, value in os.environ.items() if not is_settings_variable(name)}
    env["PYTHONUNBUFFERED"] = "1"
    if settings_dir is not None:
        env["OPA_SETTINGS_DIR"] = str(settings_dir)
    return env | extra


class LoggedProcess(Closing):
    """*command* in a session of its own, stdout and stderr appended to *log*.

    ``close()`` (or leaving the ``with`` block) kills the whole process group, so a worker's
    pool children or a server's reloader never outlive the test. *env* replaces the
    environment when given; *cwd* defaults to the log's folder.
    """

    def __init__(
        self,
        command: list[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.log = log
        self.command = list(command)
        with log.open("ab") as output:
            self.popen = subprocess.Popen(
                command,
                cwd=cwd or log.parent,
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        """Everything the process has written so far."""
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        """The end of the log, for an error message."""
        return self.output()[-LOG_TAIL:]

    def check_alive(self) -> None:
        """Fail with the log's end when the process has exited."""
        if self.popen.poll() is not None:
            raise AssertionError(
                f"{shlex.join(self.command)} exited with {self.popen.returncode}:\n{self.tail()}"
            )

    def wait(self, timeout: float) -> int:
        """The exit status, waiting at most *timeout* seconds; fail with the log's end."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{shlex.join(self.command)} did not exit within {timeout:g}s:\n{self.tail()}"
            ) from None

    def signal(self, signum: int) -> None:
        """Send *signum* to the main process only, as an operator would."""
        with suppress(ProcessLookupError):
            self.popen.send_signal(signum)

    def close(self) -> None:
        """Kill the whole process group and reap the main process."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(KILL_TIMEOUT)


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll *check* until it returns something other than None or False, and return that.

    Fails with an AssertionError naming *what* after *timeout* seconds; *check* may raise to
    end the wait early (a process that died, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s")
        time.sleep(every)


def http_answers(url: str, timeout: float = 1.0) -> bool:
    """True when an HTTP server answers *url*, whatever the status (a 503 is an answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class KeyStore(Protocol):
    """What :func:`delete_keys` needs of a Redis client (redis-py's or walrus's)."""

    def scan_iter(self, match: str, count: int) -> Iterable[Any]: ...

    def delete(self, *names: Any) -> Any: ...


DELETE_BATCH = 500


def delete_keys(client: KeyStore, prefix: str) -> int:
    """Delete the keys that start with *prefix* (a test's own) and count them; never a flush.

    *prefix* starts a SCAN pattern, so ``"*mine:"`` finds keys with ``mine:`` anywhere.
    """
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), DELETE_BATCH):
        client.delete(*keys[start : start + DELETE_BATCH])
    return len(keys)
