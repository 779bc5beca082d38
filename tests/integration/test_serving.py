"""Issue 13 items 5 and 7, and `opa run`'s exit status: a real `opa run` under slow clients,
over its connection cap, at SIGTERM with requests longer than the grace, and failing to start."""

from __future__ import annotations

import asyncio
import resource
import signal
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faults import OpaRun, disconnected_at, marker_component, write_settings
from test_faults import figure

from opa.testing import LOCALHOST

# Generous bounds: the machine is shared. They catch a hang, they do not measure speed.
SLACK = 15.0
PROMPT = 5.0
SLOW_CLIENTS = 2000

# Added to the fault tests' plugin folder (the marker driver, conftest.py's `plugins`).
SERVING_PLUGIN = '''"""Routes and a driver of the serving tests."""

import asyncio

from opa import Driver, get_router

router = get_router()


@router.get("/hello")
async def hello() -> str:
    return "hello, world"


@router.get("/sleep/{seconds}")
async def sleep(seconds: float) -> dict:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


class RefusingDriver(Driver):
    name = "refusing"
    is_async = False

    def connect(self) -> None:
        raise ConnectionError(f"cannot reach {self.opts.URL}")
'''


@pytest.fixture
def plugins(plugins: Path) -> Path:
    """The fault tests' plugin folder, with the serving routes and the refusing driver."""
    (plugins / f"serving_{uuid.uuid4().hex[:12]}.py").write_text(SERVING_PLUGIN)
    return plugins


@pytest.fixture
def open_files() -> None:
    """Room in this process for the slow clients' sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = SLOW_CLIENTS + 512
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} sockets needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def start(
    tmp_path: Path, plugins: Path, opa_runs: list[OpaRun], **settings: Any
) -> tuple[OpaRun, Path]:
    values = {"PLUGIN_PATHS": [str(plugins)], "PLUGIN_ENTRY_POINTS": False, **settings}
    folder = write_settings(tmp_path / "settings", values)
    log = tmp_path / "opa-run.log"
    run = OpaRun(folder, log)
    opa_runs.append(run)
    return run, log


def get(run: OpaRun, path: str, timeout: float = 30) -> tuple[int, float]:
    """GET *path*: its status and the seconds it took."""
    started = time.monotonic()
    with urllib.request.urlopen(f"http://{LOCALHOST}:{run.port}{path}", timeout=timeout) as answer:
        return answer.status, time.monotonic() - started


@dataclass
class Ending:
    """How one slow client's connection ended: the status it read (0: none) and when."""

    status: int
    after: float


class SlowClients:
    """*count* clients that send a request line, then one header line a second, never ending
    their head; they run in a thread of their own until the server closes each of them."""

    def __init__(self, port: int, count: int, give_up: float) -> None:
        self.port, self.count, self.give_up = port, count, give_up
        self.connected = threading.Event()
        self.endings: list[Ending] = []
        self._opened = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._all()), daemon=True)
        self._thread.start()

    async def _all(self) -> None:
        self.endings = list(await asyncio.gather(*(self._one() for _ in range(self.count))))

    async def _one(self) -> Ending:
        loop = asyncio.get_running_loop()
        # Before connecting: the server's clock for this head cannot start earlier.
        started = loop.time()
        reader, writer = await asyncio.open_connection(LOCALHOST, self.port)
        self._opened += 1
        if self._opened == self.count:
            self.connected.set()
        answer = b""
        try:
            writer.write(b"GET /hello HTTP/1.1\r\n")
            while loop.time() - started < self.give_up:
                try:
                    data = await asyncio.wait_for(reader.read(65536), 1.0)
                except TimeoutError:
                    writer.write(b"x-slow: 1\r\n")
                    continue
                if not data:
                    break
                answer += data
        except OSError:
            pass  # reset by the server: an ending too
        finally:
            writer.close()
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
        return Ending(status, loop.time() - started)

    def wait(self) -> list[Ending]:
        self._thread.join(self.give_up + SLACK)
        assert not self._thread.is_alive(), "the slow clients did not end"
        return self.endings


def pressure_lines(log: Path, needle: str, timeout: float) -> list[str]:
    """The "serving under pressure" lines, once one holds *needle* (polled, bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in log.read_text().splitlines() if "under pressure" in line]
        if any(needle in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


@pytest.mark.timeout(180)
def test_slow_header_clients_do_not_starve_hello(
    tmp_path: Path, plugins: Path, opa_runs: list[OpaRun], open_files: None
) -> None:
    """2,000 clients trickling header lines: /hello is answered meanwhile, each slow client is
    cut with 408 after HEADER_TIMEOUT, and the log says so in one line per interval."""
    header_timeout = 3.0
    run, log = start(tmp_path, plugins, opa_runs, HEADER_TIMEOUT=header_timeout)
    run.wait_serving()
    storm_began = time.monotonic()
    clients = SlowClients(run.port, SLOW_CLIENTS, give_up=header_timeout + SLACK)
    assert clients.connected.wait(SLACK), "the slow clients could not all connect"
    status, took = get(run, "/hello")
    endings = clients.wait()
    assert status == 200
    assert took < PROMPT
    assert all(ending.status == 408 for ending in endings), {e.status for e in endings}
    assert min(ending.after for ending in endings) >= header_timeout
    lines = pressure_lines(log, "heads cut after HEADER_TIMEOUT=3s", timeout=SLACK)
    assert any(f"{SLOW_CLIENTS} heads cut" in line for line in lines), lines
    intervals = (time.monotonic() - storm_began) / 5.0
    assert len(lines) <= intervals + 1, lines
    assert len(log.read_text().splitlines()) < 30, "a line per slow client reached the log"
    cut_after = sorted(ending.after for ending in endings)
    figure(
        "slow-headers",
        clients=SLOW_CLIENTS,
        hello=took,
        cut_first=cut_after[0],
        cut_last=cut_after[-1],
        pressure_lines=len(lines),
        log_lines=len(log.read_text().splitlines()),
    )


@pytest.mark.timeout(180)
def test_over_the_cap_new_clients_are_refused_quickly_and_hello_still_answered(
    tmp_path: Path, plugins: Path, opa_runs: list[OpaRun], open_files: None
) -> None:
    """MAX_CONNECTIONS 300 and 2,000 slow clients: those over the cap are refused at once,
    /hello is answered (the oldest waiting head makes room), and one line counts it all."""
    cap = 300
    run, log = start(tmp_path, plugins, opa_runs, HEADER_TIMEOUT=10, MAX_CONNECTIONS=cap)
    run.wait_serving()
    clients = SlowClients(run.port, SLOW_CLIENTS, give_up=10 + SLACK)
    assert clients.connected.wait(SLACK), "the slow clients could not all connect"
    # Eviction spares heads younger than a second; these are older by the time it runs.
    time.sleep(1.5)
    status, took = get(run, "/hello")
    endings = clients.wait()
    assert status == 200
    assert took < PROMPT
    refused_at_once = [ending for ending in endings if ending.after < PROMPT]
    assert len(refused_at_once) >= SLOW_CLIENTS - cap
    assert sum(ending.status == 503 for ending in endings) >= 100  # the others saw a reset
    lines = pressure_lines(log, "connections refused over MAX_CONNECTIONS=300", timeout=SLACK)
    assert any("refused over MAX_CONNECTIONS=300" in line for line in lines), lines
    assert any("evicted while waiting for their head" in line for line in lines), lines
    assert len(log.read_text().splitlines()) < 30, "a line per refused client reached the log"
    figure(
        "over-the-cap",
        clients=SLOW_CLIENTS,
        cap=cap,
        hello=took,
        refused_within_prompt=len(refused_at_once),
        answered_503=sum(ending.status == 503 for ending in endings),
        slowest_refusal=max(e.after for e in refused_at_once),
        pressure_lines=len(lines),
    )


@pytest.mark.timeout(120)
def test_sigterm_cuts_requests_longer_than_the_grace(
    tmp_path: Path, plugins: Path, opa_runs: list[OpaRun]
) -> None:
    """Three 60 s requests in flight at SIGTERM: cut after SHUTDOWN_GRACE with one line
    saying how many, the component still disconnected, and the process exits with 0."""
    grace, marker = 2.0, tmp_path / "marker"
    run, _ = start(
        tmp_path,
        plugins,
        opa_runs,
        SHUTDOWN_GRACE=grace,
        OPTIONAL_COMPONENTS={"MARKER": marker_component(marker)},
    )
    run.wait_serving()
    with ThreadPoolExecutor(3) as threads:
        requests = [threads.submit(get, run, "/sleep/60", 60) for _ in range(3)]
        time.sleep(1.0)  # the three are inside the route's sleep
        assert not any(request.done() for request in requests)
        signalled = time.monotonic()
        run.terminate()
        code = run.wait(grace + 5 + SLACK)
        exited = time.monotonic() - signalled
        answers = [request.exception() for request in requests]
    output = run.output()
    assert code == 0, output
    assert grace <= exited < grace + 5 + PROMPT, output
    assert all(answer is not None and "500" in str(answer) for answer in answers), answers
    cut = [line for line in output.splitlines() if "timeout graceful shutdown exceeded" in line]
    assert len(cut) == 1 and "Cancel 3 running task(s)" in cut[0], output
    assert "Traceback" not in output and "Exception in ASGI application" not in output, output
    assert disconnected_at(marker) is not None, output
    figure("sigterm-past-grace", grace=grace, exited=exited, exit_code=code, cut=cut[0][-60:])


def test_sigint_after_a_clean_shutdown_exits_0(
    tmp_path: Path, plugins: Path, opa_runs: list[OpaRun]
) -> None:
    """Ctrl-C (SIGINT) shuts down like SIGTERM and exits with status 0, not click's 1."""
    run, _ = start(tmp_path, plugins, opa_runs)
    run.wait_serving()
    run.popen.send_signal(signal.SIGINT)
    code = run.wait(SLACK)
    output = run.output()
    assert code == 0, output
    assert "all components disconnected" in output and "Aborted" not in output, output


def test_a_load_yes_component_failing_at_start_is_one_masked_error_line_and_status_1(
    tmp_path: Path, plugins: Path, opa_runs: list[OpaRun]
) -> None:
    """A LOAD: yes component that cannot connect ends `opa run` with one masked `error:` line,
    as the last line, and exit status 1."""
    component = {"LOAD": "yes", "DRIVER": "refusing", "OPTS": {"URL": "redis://:s3cr3tpw@h/0"}}
    run, _ = start(tmp_path, plugins, opa_runs, OPTIONAL_COMPONENTS={"BROKEN": component})
    code = run.wait(SLACK)
    output = run.output()
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 1, output
    assert lines[-1].startswith("error: opa start-up failed: "), output
    assert "'broken'" in lines[-1], output
    assert sum("error" in line.lower() for line in lines) == 1, output
    assert "s3cr3tpw" not in output and "Traceback" not in output, output


def test_a_bad_serving_setting_is_one_error_line_and_status_1(
    tmp_path: Path, plugins: Path, opa_runs: list[OpaRun]
) -> None:
    """OPA_MAX_CONNECTIONS=abc ends `opa run` with one line naming the setting, status 1."""
    folder = write_settings(tmp_path / "settings", {"PLUGIN_PATHS": [str(plugins)]})
    run = OpaRun(folder, tmp_path / "log", {"OPA_MAX_CONNECTIONS": "abc"})
    opa_runs.append(run)
    code = run.wait(SLACK)
    output = run.output().strip()
    assert code == 1, output
    assert output.splitlines()[-1] == (
        "error: setting MAX_CONNECTIONS (OPA_MAX_CONNECTIONS): expected a whole number "
        "from 1 to 1000000; found str 'abc'"
    ), output
