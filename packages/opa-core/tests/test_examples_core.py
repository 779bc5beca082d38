"""The examples that need only opa-core (hello-world, timekeeper, hooks), served over HTTP.

The concurrency tests start each example with its README's own run command on a real
uvicorn, send several sleep requests at once, and compare the start and end moments
the server reports: overlapping intervals prove the requests ran side by side, without
asserting how fast anything is.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from opa.testing import bound_port, build_app

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
TIMEKEEPER = EXAMPLES / "timekeeper"
HOOKS = EXAMPLES / "hooks"
# A preparing command may come first: `PYTHONPATH=... python -m books.migrate && ... opa run`.
RUN_LINE = re.compile(r"^(?:.+ && )?((?:OPA_[A-Z_]+=\S+ )*)opa run$")
START_TIMEOUT = 30.0


def readme_run_command(example: Path) -> dict[str, str]:
    """The environment of the README's one-line `... opa run` command (from the repo root)."""
    lines = (example / "README.md").read_text(encoding="utf-8").splitlines()
    for line in lines:
        match = RUN_LINE.match(line.strip())
        if match and f"OPA_PLUGIN_PATHS=examples/{example.name}" in line:
            return dict(pair.split("=", 1) for pair in shlex.split(match.group(1)))
    raise AssertionError(f"{example.name}/README.md has no one-line opa run command")


@contextmanager
def serve(example: Path, output: list[str] | None = None) -> Iterator[str]:
    """Run the example's README command with a real uvicorn; yield its base URL. What it
    printed is appended to *output* once it has stopped."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("OPA_", "DYNACONF_")) and name.upper() != "ENV"
    }
    env.update(readme_run_command(example))
    command = [sys.executable, "-m", "opa", "run", "--host", "127.0.0.1"]
    command += ["--port", "0", "--no-reload"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{bound_port(process, f'opa run for {example.name}')}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise AssertionError(f"opa run for {example.name} exited:\n{output}")
            try:
                if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"opa run for {example.name} did not answer in time")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            if output is not None:
                output.append(process.stdout.read())
            process.stdout.close()


@pytest.fixture(scope="module")
def timekeeper_url() -> Iterator[str]:
    with serve(TIMEKEEPER) as url:
        yield url


def at_once(url: str, count: int) -> list[dict[str, Any]]:
    """GET *url* from *count* threads released together; the JSON answers."""
    barrier = threading.Barrier(count)

    def one(_: int) -> dict[str, Any]:
        barrier.wait()
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def all_overlap(answers: list[dict[str, Any]]) -> bool:
    """Some moment lies inside every [start, end]: all the handlers were running at once."""
    return bool(max(a["start"] for a in answers) < min(a["end"] for a in answers))


def one_after_another(answers: list[dict[str, Any]]) -> bool:
    """Each handler started only after the previous one had ended."""
    ordered = sorted(answers, key=lambda a: a["start"])
    return all(b["start"] >= a["end"] for a, b in pairwise(ordered))


def test_every_example_readme_has_a_one_line_run_command() -> None:
    """Each examples/* folder has a README whose run command names folders that exist."""
    folders = sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert {"hello-world", "timekeeper", "hooks"} <= {p.name for p in folders}
    for folder in folders:
        for name, value in readme_run_command(folder).items():
            if name in ("OPA_SETTINGS_DIR", "OPA_PLUGIN_PATHS"):
                assert (ROOT / value).is_dir(), f"{folder.name}: {name}={value} is not a folder"


def test_hello_world_readme_command_serves_hello() -> None:
    """The hello-world README command, run for real, answers GET /hello; with no component
    configured it starts without a warning and /health answers ok."""
    output: list[str] = []
    with serve(EXAMPLES / "hello-world", output) as url:
        response = httpx.get(f"{url}/hello", timeout=10)
        health = httpx.get(f"{url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json() == "Hello, world!"
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "components": {}}
    assert "WARNING" not in output[0], output[0]


def test_timekeeper_formats_the_time(timekeeper_url: str) -> None:
    """GET /time applies a strftime format and defaults to an ISO-like one."""
    response = httpx.get(f"{timekeeper_url}/time", params={"format": "%Y|%%|%m"}, timeout=10)
    assert response.status_code == 200
    year, percent, month = response.json()["time"].split("|")
    assert year.isdigit() and len(year) == 4
    assert percent == "%"
    assert 1 <= int(month) <= 12
    default = httpx.get(f"{timekeeper_url}/time", timeout=10).json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000", default["time"])


@pytest.mark.parametrize("bad", ["%Q", "100%", "%", "", "%Y" * 40, "%-d", "%n"])
def test_timekeeper_refuses_bad_formats(timekeeper_url: str, bad: str) -> None:
    """An unknown directive, a lone %, an empty or over-long format is a 422."""
    response = httpx.get(f"{timekeeper_url}/time", params={"format": bad}, timeout=10)
    assert response.status_code == 422


def test_timekeeper_names_months(timekeeper_url: str) -> None:
    """GET /month/{n} names months 1 to 12."""
    names = [httpx.get(f"{timekeeper_url}/month/{n}", timeout=10).json()["name"] for n in (1, 12)]
    assert names == ["January", "December"]


@pytest.mark.parametrize("bad", ["0", "13", "-1", "x", "1.5", "99999999999999999999"])
def test_timekeeper_refuses_bad_month_numbers(timekeeper_url: str, bad: str) -> None:
    """A month number outside 1..12 or not an integer is a clean 422, not a server error."""
    response = httpx.get(f"{timekeeper_url}/month/{bad}", timeout=10)
    assert response.status_code == 422


@pytest.mark.parametrize("route", ["sleep-async", "sleep-sync", "sleep-blocking"])
@pytest.mark.parametrize("bad", ["-1", "5.5", "600", "x"])
def test_timekeeper_bounds_sleeps(timekeeper_url: str, route: str, bad: str) -> None:
    """Sleeps are bounded to 0..5 seconds; anything else is a 422 and sleeps not at all."""
    response = httpx.get(f"{timekeeper_url}/{route}/{bad}", timeout=10)
    assert response.status_code == 422


def test_async_sleeps_run_side_by_side(timekeeper_url: str) -> None:
    """Concurrent /sleep-async requests are all in progress at once on the event loop."""
    answers = at_once(f"{timekeeper_url}/sleep-async/1", 5)
    assert all_overlap(answers)
    assert len({a["thread_id"] for a in answers}) == 1  # one event loop served them all


def test_sync_sleeps_run_side_by_side_in_the_threadpool(timekeeper_url: str) -> None:
    """Concurrent /sleep-sync requests overlap too, each on a threadpool thread of its own."""
    loop_thread = httpx.get(f"{timekeeper_url}/sleep-async/0", timeout=10).json()["thread_id"]
    answers = at_once(f"{timekeeper_url}/sleep-sync/1", 5)
    assert all_overlap(answers)
    threads = {a["thread_id"] for a in answers}
    assert len(threads) == 5
    assert loop_thread not in threads


def test_blocking_sleeps_in_async_routes_run_one_after_another(timekeeper_url: str) -> None:
    """time.sleep inside async def blocks the loop: concurrent requests are serialised."""
    answers = at_once(f"{timekeeper_url}/sleep-blocking/0.3", 3)
    assert one_after_another(answers)
    assert not all_overlap(answers)
    assert len({a["thread_id"] for a in answers}) == 1  # all on the blocked event loop


def test_hooks_example_uses_the_higher_order_implementation() -> None:
    """GET /get-fullname calls the hook; formal.py (order 10) wins over the default (-1)."""
    app = build_app({"PLUGIN_PATHS": [str(HOOKS)]}, settings_dir=HOOKS / "settings")
    with TestClient(app) as client:
        response = client.get("/get-fullname/Ada/Lovelace")
    assert response.status_code == 200
    assert response.json() == {"fullname": "LOVELACE, Ada"}


def test_hooks_example_falls_back_to_the_default_without_formal() -> None:
    """With formal.py blacklisted, the order -1 default in people.py answers."""
    settings = {"PLUGIN_PATHS": [str(HOOKS)], "PLUGIN_BLACKLIST_LIST": [f"{HOOKS}/formal"]}
    with TestClient(build_app(settings, settings_dir=HOOKS / "settings")) as client:
        response = client.get("/get-fullname/Ada/Lovelace")
    assert response.json() == {"fullname": "Ada Lovelace"}


def test_hooks_example_readme_command_serves_fullname() -> None:
    """The hooks README command, run for real, answers over HTTP and validates names."""
    with serve(HOOKS) as url:
        good = httpx.get(f"{url}/get-fullname/Grace/Hopper", timeout=10)
        too_long = httpx.get(f"{url}/get-fullname/{'x' * 51}/Hopper", timeout=10)
    assert good.json() == {"fullname": "HOPPER, Grace"}
    assert too_long.status_code == 422
