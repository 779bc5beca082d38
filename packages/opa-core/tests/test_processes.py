"""The test kit's process helpers: logged processes, waits, clean environments, key clean-up."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from opa import OptionsError
from opa.testing import (
    LoggedProcess,
    RedisServer,
    clean_environ,
    delete_keys,
    http_answers,
    make_driver,
    wait_for,
)
from tcp_driver import TcpEchoDriver


def test_a_logged_process_writes_its_log_and_is_killed_with_its_children(tmp_path: Path) -> None:
    """Output lands in the log; close() kills the whole group, a child of the process too."""
    code = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    with LoggedProcess([sys.executable, "-c", code], tmp_path / "out.log") as process:
        child = wait_for(lambda: process.output().strip() or None, 10, "the child's pid")
        process.check_alive()
    assert process.popen.poll() == -signal.SIGKILL
    wait_for(lambda: not Path(f"/proc/{child}").exists() or _is_zombie(int(child)), 5, "exit")


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def test_a_dead_process_fails_with_its_command_and_log(tmp_path: Path) -> None:
    """check_alive() and wait() name the command and quote the log's end."""
    command = [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]
    with LoggedProcess(command, tmp_path / "out.log") as process:
        assert process.wait(10) == 3
        with pytest.raises(AssertionError, match=r"exited with 3:\nboom"):
            process.check_alive()
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with (
        LoggedProcess(sleeper, tmp_path / "b.log") as slow,
        pytest.raises(AssertionError, match=r"did not exit within 0\.1s"),
    ):
        slow.wait(0.1)


def test_wait_for_returns_the_first_true_value_and_fails_naming_what() -> None:
    """wait_for hands back what the check found; after the timeout it names what it waited for."""
    values = iter([None, False, "found"])
    assert wait_for(lambda: next(values), 5, "a value", every=0.01) == "found"
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"the impossible did not happen within 0\.2s"):
        wait_for(lambda: False, 0.2, "the impossible", every=0.05)
    assert time.monotonic() - started < 2


def test_http_answers_is_false_where_nothing_listens() -> None:
    """A refused connection is no answer."""
    from opa.testing import closed_port

    assert not http_answers(f"http://127.0.0.1:{closed_port()}/", timeout=1)


def test_clean_environ_drops_the_machines_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPA_*, DYNACONF_*, ENV and *_FOR_DYNACONF are left out; the settings folder is set."""
    for name in ("OPA_LOG_LEVEL", "DYNACONF_X", "ENV", "SETTINGS_FILE_FOR_DYNACONF"):
        monkeypatch.setenv(name, "machine")
    monkeypatch.setenv("KEEP_ME", "1")
    env = clean_environ(Path("/settings"), EXTRA="yes")
    assert env["OPA_SETTINGS_DIR"] == "/settings"
    assert env["KEEP_ME"] == "1" and env["EXTRA"] == "yes" and env["PYTHONUNBUFFERED"] == "1"
    assert not {"OPA_LOG_LEVEL", "DYNACONF_X", "ENV", "SETTINGS_FILE_FOR_DYNACONF"} & set(env)
    assert "PATH" in env and os.environ["OPA_LOG_LEVEL"] == "machine"


class FakeKeys:
    """The part of a Redis client delete_keys uses, over a dict."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = set(keys)
        self.deletes = 0

    def scan_iter(self, match: str, count: int) -> list[str]:
        import fnmatch

        return [key for key in sorted(self.keys) if fnmatch.fnmatchcase(key, match)]

    def delete(self, *names: Any) -> int:
        self.deletes += 1
        self.keys -= set(names)
        return len(names)


def test_delete_keys_removes_only_the_prefix_in_batches() -> None:
    """Keys under the prefix go, in batches; others stay; the count is returned."""
    client = FakeKeys([f"mine:{i}" for i in range(1200)] + ["theirs:1", "x:mine:2"])
    assert delete_keys(client, "mine:") == 1200
    assert client.keys == {"theirs:1", "x:mine:2"} and client.deletes == 3
    assert delete_keys(client, "*mine:") == 1


def test_make_driver_checks_options_as_an_app_would() -> None:
    """Bad options raise the OptionsError start-up would, naming the component and option."""
    driver = make_driver(TcpEchoDriver, {"URL": "tcp://127.0.0.1:1"}, "probe")
    assert driver.component == "probe"
    with pytest.raises(OptionsError, match=r"component 'probe'.*URL"):
        make_driver(TcpEchoDriver, {}, "probe")


def test_a_private_redis_on_a_unix_socket_answers_there() -> None:
    """RedisServer(unix_socket=True) listens on a socket file and says so in its URL."""
    server = RedisServer(unix_socket=True)
    try:
        server.start()
        assert server.socket is not None and server.socket.exists()
        assert server.url == f"unix://{server.socket}?db=0"
    finally:
        server.close()
    assert not server.folder.exists()
