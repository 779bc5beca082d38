"""`opa run --workers N`: real processes on one port, each with its own components."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from opa._cli import cli
from opa.testing import bound_port

# Seconds a loaded machine may take to start the server and its workers (a bound, not a goal).
START = 120

# Reveals the serving process only to this test: opa never exposes a pid by default.
PID_PLUGIN = '''
"""Test plugin: /whoami tells which process answered and where its component connected."""
import asyncio
import os

from opa import Driver, get_instance, get_router

router = get_router()


@router.get("/whoami")
def whoami() -> dict:
    return {"pid": os.getpid(), "connected_in": get_instance("recorder")}


@router.get("/slow")
async def slow() -> str:
    """Says it started (in the file MARK names), then outlasts any grace period."""
    with open(os.environ["MARK"], "a") as mark:
        mark.write(str(os.getpid()))
    await asyncio.sleep(3600)
    return "too late"


class PidRecorder(Driver):
    name = "pid-recorder"

    def connect(self):
        if getattr(self.opts, "FAIL", False):
            raise RuntimeError("refused by the recorder")
        self.instance = os.getpid()

    def disconnect(self):
        pass
'''


def project(tmp_path: Path, load: str = "yes", fail: bool = False, **settings: Any) -> Path:
    """A settings folder whose one component records the pid it connected in."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / f"pids_{tmp_path.name}.py").write_text(PID_PLUGIN)
    recorder = {"LOAD": load, "DRIVER": "pid-recorder", "OPTS": {"FAIL": fail}}
    default = {
        "PLUGIN_PATHS": [str(plugins)],
        "OPTIONAL_COMPONENTS": {"RECORDER": recorder},
        **settings,
    }
    folder = tmp_path / "settings"
    folder.mkdir()
    (folder / "settings.yaml").write_text(yaml.safe_dump({"default": default}))
    return folder


def start(folder: Path, *args: str, environ: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPA_") and k != "ENV"}
    env["MARK"] = str(folder / "slow-started")
    env.update(environ or {})
    command = [sys.executable, "-m", "opa", "--settings-dir", str(folder), "run", "--port", "0"]
    return subprocess.Popen(
        [*command, "--no-reload", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _stat(pid: int) -> list[str]:
    """State, parent pid, ... of *pid* from Linux's /proc; empty once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def children(pid: int) -> set[int]:
    """The live processes whose parent is *pid*."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            fields = _stat(int(entry.name))
            if fields and int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def answers_from(port: int, wanted: int, server: subprocess.Popen[str]) -> dict[int, int]:
    """Ask /whoami on fresh connections until *wanted* processes answered: pid -> connect pid."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + START
    while len(seen) < wanted and time.monotonic() < deadline and server.poll() is None:
        try:
            with httpx.Client(timeout=2) as client:  # a new connection each time
                health = client.get(f"http://127.0.0.1:{port}/health")
                body = client.get(f"http://127.0.0.1:{port}/whoami").json()
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        assert health.status_code == 200
        seen[body["pid"]] = body["connected_in"]
    return seen


def test_two_workers_answer_on_one_port_each_with_its_own_components(tmp_path: Path) -> None:
    """--workers 2 serves /health from two processes, each connected in itself; SIGTERM ends
    them all and the command exits 0."""
    server = start(project(tmp_path), "--workers", "2")
    try:
        port = bound_port(server, "opa run --workers 2", START)
        seen = answers_from(port, 2, server)
        assert len(seen) == 2, f"answers came from {seen} (exit {server.poll()})"
        assert server.pid not in seen
        for pid, connected_in in seen.items():
            assert connected_in == pid  # connected after start, in the serving process
        assert set(seen) <= children(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert [pid for pid in seen if alive(pid)] == []


def test_the_workers_setting_starts_that_many_and_sigterm_keeps_the_grace(
    tmp_path: Path,
) -> None:
    """WORKERS: 2 in the settings does what --workers 2 does; after SIGTERM a request still
    running is cut at SHUTDOWN_GRACE, and the command exits 0."""
    folder = project(tmp_path, WORKERS=2, SHUTDOWN_GRACE=1)
    server = start(folder)
    mark = folder / "slow-started"
    slow: list[BaseException] = []
    try:
        port = bound_port(server, "opa run (WORKERS: 2)", START)
        assert len(answers_from(port, 2, server)) == 2

        def call_slow() -> None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/slow", timeout=START)
            except httpx.HTTPError as exc:
                slow.append(exc)

        caller = threading.Thread(target=call_slow)
        caller.start()
        while not mark.exists() and caller.is_alive():
            time.sleep(0.05)
        assert mark.exists(), "the slow request never reached a worker"
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=START)
    caller.join(timeout=START)
    assert server.returncode == 0, output
    assert "Cancel 1 running task(s), timeout graceful shutdown exceeded" in output
    assert not caller.is_alive()
    assert "Traceback" not in output, output


def test_a_worker_that_cannot_start_stops_them_all_with_one_error_line(tmp_path: Path) -> None:
    """A LOAD: yes component that fails in the workers ends the command with status 1."""
    server = start(project(tmp_path, fail=True), "--workers", "2")
    try:
        output, _ = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode == 1, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: opa start-up failed: "), output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "settings"),
    [(["--reload", "--workers", "2"], {}), ([], {"RELOAD": True, "WORKERS": 3})],
)
def test_reload_and_several_workers_are_refused_in_one_line(
    tmp_path: Path, args: list[str], settings: dict[str, Any]
) -> None:
    """Reload with several workers is one `error:` line and status 1, before anything serves."""
    folder = project(tmp_path, **settings)
    env = {"OPA_SETTINGS_DIR": None, "OPA_ENV": None, "OPA_LOG_LEVEL": None, "ENV": None}
    result = CliRunner().invoke(cli, ["--settings-dir", str(folder), "run", *args], env=env)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: reload and ")
    assert "cannot be combined" in lines[0]


def test_workers_below_one_is_a_usage_error(tmp_path: Path) -> None:
    """`opa run --workers 0` is click's usage error (status 2)."""
    env = {"OPA_SETTINGS_DIR": None, "OPA_ENV": None, "OPA_LOG_LEVEL": None, "ENV": None}
    args = ["--settings-dir", str(project(tmp_path)), "run", "--workers", "0"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2
    assert "Invalid value for '--workers'" in result.output


def test_a_port_in_use_is_one_error_line_before_any_worker_starts(tmp_path: Path) -> None:
    """--workers 2 on a port another socket holds ends with status 1 and one line."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        folder = project(tmp_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPA_") and k != "ENV"}
        command = [sys.executable, "-m", "opa", "--settings-dir", str(folder), "run"]
        command += ["--port", port, "--no-reload", "--workers", "2"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: opa start-up failed: "), done.stderr
    assert "in use" in last
    assert "Started parent process" not in done.stderr
