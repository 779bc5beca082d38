"""Insert-then-find throughput of the Motor and PyMongo-async drivers, side by side.

One plugin route inserts a document and finds it again by its id. Two apps serve it, one
per driver, each by uvicorn in its own subprocess, against the same server. Rounds take
turns between the apps (and swap who goes first), so a drift of the machine or the server
hits both alike; the table gives each driver's median requests per second and the ratio.

    python benchmarks/bench_mongodb.py [--url URL] [--rounds 9] [--requests 1000]

The server is ``--url``, else ``OPA_TEST_MONGODB_URL``, else a private nx-27017 started for
the run (``opa.testing.TestServices``). Needs opa-core, both driver packages, uvicorn and httpx
installed in this interpreter (and nx-27017 for the private server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import bench_http as http

from opa.testing import (
    LoggedProcess,
    TestServices,
    clean_environ,
    free_port,
    http_answers,
    wait_for,
)

DRIVERS = {"mongodb-async-motor": "motor", "mongodb-async-pymongo": "pymongo"}
"""Driver name -> the library whose version the table shows."""

ROUTE = "/insert-find"
PLUGIN = f'''
from typing import Any

from opa import get_component, get_router

router = get_router()


@router.post("{ROUTE}")
async def insert_find() -> dict[str, Any]:
    collection = get_component("mongodb").database["bench"]
    document: dict[str, Any] = {{"text": "benchmark"}}
    await collection.insert_one(document)
    found = await collection.find_one({{"_id": document["_id"]}})
    return {{"found": found is not None}}
'''


@dataclass
class App:
    """One uvicorn process serving the plugin with one driver, and its measured rounds."""

    driver: str
    port: int
    process: LoggedProcess
    rates: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def write_app(folder: Path, driver: str, opts: dict[str, str]) -> Path:
    """A plugin folder and a settings folder whose only component uses *driver*; the latter."""
    (folder / "plugins").mkdir(parents=True)
    (folder / "plugins" / "insert_find.py").write_text(PLUGIN)
    settings = {
        "default": {
            "LOG_LEVEL": "WARNING",
            "PLUGIN_PATHS": [str(folder / "plugins")],
            "PLUGIN_ENTRY_POINTS": False,
            "OPTIONAL_COMPONENTS": {"MONGODB": {"LOAD": "yes", "DRIVER": driver, "OPTS": opts}},
        }
    }
    (folder / "settings").mkdir()
    (folder / "settings" / "settings.json").write_text(json.dumps(settings))
    return folder / "settings"


def start_app(driver: str, settings_dir: Path, log_path: Path) -> App:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "opa.main:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    return App(driver, port, LoggedProcess(command, log_path, env=clean_environ(settings_dir)))


def wait_ready(app: App, timeout: float = 60.0) -> None:
    """Until the app's /health answers; fail with its log when it exits first."""

    def answers() -> bool:
        app.process.check_alive()
        return http_answers(f"{app.url}/health", timeout=2)

    wait_for(answers, timeout, f"the {app.driver} app answering /health")


@contextmanager
def running_apps(url: str, scratch: Path) -> Iterator[list[App]]:
    """Both apps, each on a database of its own on the server at *url*; at the end the apps
    are stopped and their databases dropped."""
    from pymongo import MongoClient

    apps: list[App] = []
    databases: list[str] = []
    try:
        for driver in DRIVERS:
            databases.append(f"opa_bench_{secrets.token_hex(4)}")
            opts = {"URL": url, "DATABASE": databases[-1]}
            settings_dir = write_app(scratch / driver, driver, opts)
            apps.append(start_app(driver, settings_dir, scratch / f"{driver}.log"))
        for app in apps:
            wait_ready(app)
        yield apps
    finally:
        for app in apps:
            app.process.close()
        client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
        with client:
            for database in databases:
                client.drop_database(database)


async def load(url: str, requests: int, concurrency: int) -> tuple[float, int]:
    """Requests per second for *requests* POSTs from *concurrency* keep-alive workers, and
    how many were not answered 200."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        remaining, errors = requests, 0

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                response = await client.post(ROUTE)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started), errors


def measure(apps: list[App], rounds: int, requests: int, concurrency: int) -> int:
    """Alternating rounds, after one unmeasured warm-up round each; the count of errors."""
    errors = 0
    for app in apps:
        asyncio.run(load(app.url, max(requests // 10, concurrency), concurrency))
    for number in range(rounds):
        order = apps if number % 2 == 0 else list(reversed(apps))
        for app in order:
            rate, failed = asyncio.run(load(app.url, requests, concurrency))
            app.rates.append(rate)
            errors += failed
    return errors


def describe_server(url: str, started_here: bool) -> str:
    """What answered: nx-27017 (with its package version when started here) or a mongod."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    with client:
        info = client.admin.command("buildInfo")
    process, reported = str(info.get("process", "mongod")), str(info.get("version", "?"))
    if process.startswith("nx"):
        nx_version = package_version("nx-27017") if started_here else "(version unknown)"
        where = "started for this run" if started_here else "given by URL"
        return f"nx-27017 {nx_version}, {where} (it reports MongoDB {reported})"
    return f"{process} {reported}"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def table(apps: list[App], server: str, args: argparse.Namespace, errors: int) -> str:
    rows = [
        "| driver | library | median req/s | min | max |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for app in apps:
        library = DRIVERS[app.driver]
        rows.append(
            f"| `{app.driver}` | {library} {package_version(library)} "
            f"| {statistics.median(app.rates):.0f} | {min(app.rates):.0f} | {max(app.rates):.0f} |"
        )
    motor, pymongo = (statistics.median(app.rates) for app in apps)
    rows += [
        "",
        f"PyMongo async / Motor: **{pymongo / motor:.2f}x** (medians)",
        "",
        f"Server: {server}. Each round: {args.requests} `POST {ROUTE}` (insert_one, then "
        f"find_one by _id), concurrency {args.concurrency} (keep-alive connections); {args.rounds} "
        f"rounds per driver, alternating, after a warm-up. One uvicorn worker per app; "
        f"Python {platform.python_version()} on {platform.machine()}.",
    ]
    if errors:
        rows.append(f"\n**{errors} requests were not answered 200.**")
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="MongoDB URL (default: OPA_TEST_MONGODB_URL or nx-27017)")
    parser.add_argument("--rounds", type=int, default=9, help="measured rounds per driver")
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections")
    return http.checked_args(parser, argv, ("rounds", "requests", "concurrency"))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the markdown table; non-zero when a request failed."""
    args = parse_args(argv)
    with ExitStack() as stack:
        url = args.url or os.environ.get("OPA_TEST_MONGODB_URL")
        started_here = url is None
        if url is None:
            url = stack.enter_context(TestServices()).mongodb_url()
        server = describe_server(url, started_here)
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opa-bench-")))
        apps = stack.enter_context(running_apps(url, scratch))
        errors = measure(apps, args.rounds, args.requests, args.concurrency)
        print(table(apps, server, args, errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
