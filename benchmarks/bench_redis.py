"""The Redis counters through opa, against bare FastAPI and fastapi-plugins, in one run.

``GET /counter-sync`` (the ``redis-walrus`` driver) and ``GET /counter-async`` (the
``redis-aioredis`` driver) are served by ``examples/redis`` under opa, and by a bare FastAPI
app that builds the same clients (walrus, ``redis.asyncio``) on the same pool settings as
the drivers. ``GET /counter-async`` is also served
by fastapi-plugins, which pins redis<5, from a virtual environment of its own (made with uv
under ``.bench/`` and kept for later runs). All use the same Redis. Each round starts a
fresh uvicorn process for every server in turn (the order rotating each round), warms it up
and measures it: a process keeps its own few percent of luck for its whole life, so only
new processes sample it. The table gives the median rates and, as the ratio, the median of
the per-round ratios: rounds next to each other in time share the machine's mood, so
pairing them cancels most of its drift; the 95% bootstrap interval of that median follows
it in brackets. Nothing asserts: a MISS is a number to look at.

    python benchmarks/bench_redis.py [--rounds 15] [--requests 5000] [--loadgen auto]

Redis is 127.0.0.1:6379 database 9 when it answers, else a private redis-server
(``opa.testing.TestServices``); ``--url`` names another. Keys are written under
``opa-bench:<run>:`` and deleted at the end. Needs opa-core, both Redis drivers, uvicorn
and httpx in this interpreter; wrk is used for the load when it is on PATH.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from statistics import median
from typing import Any

import bench_http as http

from opa.testing import clean_environ, delete_keys

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "redis"
PEER_VENV = ROOT / ".bench" / "fastapi-plugins"
PEER_PACKAGES = ("fastapi-plugins", "uvicorn")
SYNC, ASYNC = "/counter-sync", "/counter-async"
TARGET_BARE = 0.95
TARGET_PEER = 1.0

# The key rule of examples/redis/counters.py, so every app validates the same query.
KEY_RULE = 'Key = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]'

BARE_APP = """
\"\"\"Bare FastAPI: the example's two counters on walrus and redis.asyncio, no opa.\"\"\"
from contextlib import asynccontextmanager
from typing import Annotated

import redis
import walrus
from fastapi import FastAPI, Query
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

URL = {url!r}
PREFIX = {prefix!r}
POOL = {pool!r}
RETRIES, BACKOFF_BASE, BACKOFF_CAP = {retries!r}, {base!r}, {cap!r}
{key_rule}


def backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE)


sync_pool = redis.BlockingConnectionPool.from_url(
    URL,
    retry=Retry(backoff(), RETRIES, supported_errors=(redis.ConnectionError,)),
    retry_on_error=[redis.ConnectionError],
    **POOL,
)
db = walrus.Database(connection_pool=sync_pool)
clients: dict[str, Redis] = {{}}


@asynccontextmanager
async def lifespan(app: FastAPI):
    pool = BlockingConnectionPool.from_url(
        URL,
        retry=AsyncRetry(backoff(), RETRIES, supported_errors=(redis.ConnectionError,)),
        retry_on_error=[redis.ConnectionError],
        **POOL,
    )
    clients["async"] = Redis(connection_pool=pool)
    yield
    await clients["async"].aclose()
    await pool.aclose()
    sync_pool.disconnect()


app = FastAPI(lifespan=lifespan)


@app.get("/counter-sync")
def counter_sync(key: Key = "default") -> int:
    return db.incr(f"{{PREFIX}}counter:{{key}}")


@app.get("/counter-async")
async def counter_async(key: Key = "default") -> int:
    return await clients["async"].incr(f"{{PREFIX}}counter:{{key}}")
"""

PEER_APP = """
\"\"\"fastapi-plugins' Redis plugin serving the async counter.\"\"\"
from contextlib import asynccontextmanager
from typing import Annotated

import fastapi_plugins
from fastapi import FastAPI, Query

PREFIX = {prefix!r}
{key_rule}


@asynccontextmanager
async def lifespan(app: FastAPI):
    config = fastapi_plugins.RedisSettings(
        redis_url={url!r},
        redis_db={db!r},
        redis_max_connections={max_connections!r},
        redis_decode_responses={decode!r},
    )
    await fastapi_plugins.redis_plugin.init_app(app, config=config)
    await fastapi_plugins.redis_plugin.init()
    yield
    await fastapi_plugins.redis_plugin.terminate()


app = FastAPI(lifespan=lifespan)


@app.get("/counter-async")
async def counter_async(cache: fastapi_plugins.TRedisPlugin, key: Key = "default") -> int:
    return await cache.incr(f"{{PREFIX}}counter:{{key}}")
"""

PEER_VERSIONS = (
    "import importlib.metadata as m, json, platform; print(json.dumps({n: m.version(n) for n "
    "in ('fastapi-plugins', 'redis', 'fastapi', 'uvicorn')} | {'python': "
    "platform.python_version()}))"
)


@dataclass
class Variant:
    """One endpoint on one kind of server, and its measured rounds.

    Every round runs in a server process of its own: *launch* starts it, it is warmed up,
    measured and stopped. Processes of the same app differ by a few percent for the whole of
    their life (hash seeds, memory layout, which core they share with Redis or wrk), so a run
    that kept one process per app compared those draws, not the apps.
    """

    name: str
    launch: Callable[[], http.Server]
    path: str
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)

    def measure(self, send: Callable[[str, int], float], warmup: int, requests: int) -> float:
        """*send* is the load: it sends that many requests to a URL and returns the rate."""
        server = self.launch()
        try:
            send(server.at(self.path), warmup)
            before = server.cpu_seconds()
            rate = send(server.at(self.path), requests)
            self.cpu_us.append((server.cpu_seconds() - before) / requests * 1e6)
        finally:
            server.stop()
        self.rates.append(rate)
        return rate


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def pool_settings(url: str) -> tuple[dict[str, Any], dict[str, float]]:
    """The drivers' pool keyword arguments for *url* with default options, and the retry
    figures, so the bare app builds exactly what the drivers build."""
    from opa_redis_common import RedisOptions, pool_kwargs

    options = RedisOptions(URL=url)
    retry = {
        "retries": options.RETRIES,
        "base": options.RETRY_BACKOFF_BASE,
        "cap": options.RETRY_BACKOFF_CAP,
    }
    return pool_kwargs(options), retry


def write_opa_app(folder: Path, url: str, prefix: str, **extra: Any) -> Path:
    """Settings serving examples/redis on *url* with *prefix* (and *extra* settings); the
    settings folder."""
    component = {"LOAD": "yes", "OPTS": {"URL": url}}
    settings = {
        "default": {
            "LOG_LEVEL": "WARNING",
            "PLUGIN_PATHS": [str(EXAMPLE)],
            "PLUGIN_ENTRY_POINTS": False,
            "EXAMPLE_KEY_PREFIX": prefix,
            **extra,
            "OPTIONAL_COMPONENTS": {
                "WALRUS": component | {"DRIVER": "redis-walrus"},
                "AIOREDIS": component | {"DRIVER": "redis-aioredis"},
            },
        }
    }
    (folder / "settings").mkdir(parents=True)
    (folder / "settings" / "settings.json").write_text(json.dumps(settings))
    return folder / "settings"


def write_bare_app(folder: Path, url: str, prefix: str) -> Path:
    pool, retry = pool_settings(url)
    folder.mkdir(parents=True)
    source = BARE_APP.format(url=url, prefix=prefix, pool=pool, key_rule=KEY_RULE, **retry)
    (folder / "bare_redis.py").write_text(source)
    return folder


def write_peer_app(folder: Path, url: str, prefix: str) -> Path:
    from urllib.parse import urlsplit

    pool, _ = pool_settings(url)
    db = urlsplit(url).path.strip("/")
    folder.mkdir(parents=True)
    source = PEER_APP.format(
        url=url,
        db=int(db) if db else None,
        prefix=prefix,
        max_connections=pool["max_connections"],
        decode=pool["decode_responses"],
        key_rule=KEY_RULE,
    )
    (folder / "peer_redis.py").write_text(source)
    return folder


def peer_python() -> tuple[str | None, str]:
    """The fastapi-plugins environment's python, made on first use; else None and why."""
    python = PEER_VENV / "bin" / "python"
    if python.exists():
        return str(python), "cached"
    uv = shutil.which("uv")
    if uv is None:
        return None, "uv is not on PATH, so its environment could not be made"
    PEER_VENV.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="fastapi-plugins-", dir=PEER_VENV.parent))
    venv = staging / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [uv, "venv", "--quiet", "--python", base, str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *PEER_PACKAGES],
    ]
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                reason = (done.stderr or done.stdout).strip().splitlines()
                return None, f"`{' '.join(step[:3])}` failed: {' '.join(reason[-3:])}"
        venv.rename(PEER_VENV)  # only a complete environment is ever cached
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"making its environment failed: {error}"
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(python), "made for this run"


def peer_versions(python: str) -> dict[str, str]:
    done = subprocess.run([python, "-c", PEER_VERSIONS], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def delete_keys_at(url: str, prefix: str) -> int:
    """Delete the keys under *prefix* from the Redis at *url*; how many there were."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return delete_keys(client, prefix)
    finally:
        client.close()


def alternate(variants: list[Variant], rounds: int, measure: Callable[[Variant], float]) -> None:
    """*rounds* rounds, each variant once per round; the order rotates every round."""
    for number in range(rounds):
        shift = number % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            measure(variant)
        shown = ", ".join(f"{v.name} {v.rates[-1]:,.0f}" for v in variants)
        say(f"  round {number + 1}/{rounds}: {shown}")


@dataclass(frozen=True)
class Comparison:
    """Two variants' figures round by round (rates, or CPU per request): the median of the
    per-round ratios, and its 95% bootstrap interval (how far the rounds let it be trusted)."""

    ratio: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.ratio:.3f}x ({self.low:.2f}-{self.high:.2f})"


def compare(first: list[float], second: list[float], draws: int = 2_000) -> Comparison:
    """*first* against *second*, round by round."""
    ratios = [a / b for a, b in zip(first, second, strict=True)]
    draw = random.Random(0).choices  # seeded: the same rounds always print the same interval
    medians = sorted(median(draw(ratios, k=len(ratios))) for _ in range(draws))
    return Comparison(median(ratios), medians[int(draws * 0.025)], medians[int(draws * 0.975) - 1])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Redis URL (default: 127.0.0.1:6379/9, else a private one)")
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds per server")
    parser.add_argument("--requests", type=int, default=5_000, help="requests per round")
    parser.add_argument("--warmup", type=int, default=1_000, help="warm-up requests per server")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--no-peer", action="store_true", help="leave fastapi-plugins out")
    return http.checked_args(parser, argv, ("rounds", "requests", "concurrency"))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the markdown table; it says why when fastapi-plugins
    could not be measured."""
    args = parse_args(argv)
    from opa import mask_secrets
    from opa.testing import TestServices

    started = time.perf_counter()
    run = uuid.uuid4().hex[:8]
    prefix = f"opa-bench:{run}:"
    peer_note = "left out (--no-peer)"
    peer_python_path: str | None = None
    if not args.no_peer:
        say("redis: the fastapi-plugins environment (uv, under .bench/)")
        peer_python_path, peer_note = peer_python()
    rows: list[http.Row] = []
    notes: list[str] = []
    with ExitStack() as stack:
        url = args.url or stack.enter_context(TestServices()).redis_url()
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opa-bench-")))
        stack.callback(lambda: say(f"redis: deleted {delete_keys_at(url, prefix)} keys"))
        say(f"redis: a fresh server per round on {mask_secrets(url)}")
        opa_settings = write_opa_app(scratch / "opa", url, f"{prefix}opa:")
        bare_dir = write_bare_app(scratch / "bare", url, f"{prefix}bare:")
        launchers: dict[str, Callable[[], http.Server]] = {
            "opa": partial(
                http.start_server,
                "opa",
                "opa.main:app",
                scratch / "opa",
                clean_environ(opa_settings),
                scratch / "opa.log",
                path=ASYNC,
            ),
            "bare": partial(
                http.start_server,
                "bare",
                "bare_redis:app",
                bare_dir,
                clean_environ(),
                scratch / "bare.log",
                path=ASYNC,
            ),
        }
        versions: dict[str, str] = {}
        if peer_python_path is not None:
            launch_peer = partial(
                http.start_server,
                "fastapi-plugins",
                "peer_redis:app",
                write_peer_app(scratch / "peer", url, f"{prefix}peer:"),
                clean_environ(),
                scratch / "peer.log",
                path=ASYNC,
                python=peer_python_path,
            )
            try:
                launch_peer().stop()  # it starts here, so a broken environment is a note
                launchers["peer"] = launch_peer
                versions = peer_versions(peer_python_path)
            except AssertionError as error:  # it exited, or never answered
                peer_note = f"its server did not start: {str(error).splitlines()[-1][:200]}"

        def send(target: str, requests: int) -> float:
            return http.load(target, requests, args.concurrency, args.loadgen, scratch)

        def measure(variant: Variant) -> float:
            return variant.measure(send, args.warmup, args.requests)

        groups: dict[str, list[Variant]] = {
            SYNC: [Variant(name, launchers[name], SYNC) for name in ("opa", "bare")],
            ASYNC: [Variant(name, launch, ASYNC) for name, launch in launchers.items()],
        }
        for number, (path, variants) in enumerate(groups.items(), start=1):
            say(f"redis {number}/2: GET {path}, {', '.join(v.name for v in variants)}")
            alternate(variants, args.rounds, measure)

    load = f"{args.requests:,} requests x {args.rounds} rounds, c={args.concurrency}"
    redis_version = package_version("redis")
    for number, (path, variants) in enumerate(groups.items(), start=1):
        opa, bare = variants[0], variants[1]
        driver = "redis-walrus" if path == SYNC else "redis-aioredis"
        compared = compare(opa.rates, bare.rates)
        rows.append(
            http.Row(
                str(number),
                f"`GET {path}` ({driver}) vs bare FastAPI, req/s",
                f"{median(opa.rates):,.0f}",
                f"{median(bare.rates):,.0f}",
                str(compared),
                f">= {TARGET_BARE}x",
                verdict(compared.ratio >= TARGET_BARE),
            )
        )
        cpu_note = ", ".join(f"{v.name} {median(v.cpu_us):.0f}" for v in variants)
        cpu_ratios = ", ".join(
            f"{opa.name}/{v.name} {compare(opa.cpu_us, v.cpu_us)}" for v in variants[1:]
        )
        notes.append(
            f"{number}: ratio of the medians {median(opa.rates) / median(bare.rates):.3f}; "
            f"server CPU per request, us: {cpu_note}; CPU per request, {cpu_ratios}"
        )
    peer = next((v for v in groups[ASYNC] if v.name == "peer"), None)
    if peer is not None:
        opa = groups[ASYNC][0]
        compared = compare(opa.rates, peer.rates)
        rows.append(
            http.Row(
                "3",
                f"`GET {ASYNC}` vs fastapi-plugins {versions.get('fastapi-plugins', '?')} "
                f"(redis {versions.get('redis', '?')}), req/s",
                f"{median(opa.rates):,.0f}",
                f"{median(peer.rates):,.0f}",
                str(compared),
                f">= {TARGET_PEER:.2f}x",
                verdict(compared.ratio >= TARGET_PEER),
            )
        )
        notes.append(
            f"3: ratio of the medians {median(opa.rates) / median(peer.rates):.3f}; "
            f"fastapi-plugins ran in its own environment ({peer_note}: "
            f"fastapi {versions.get('fastapi', '?')}, uvicorn {versions.get('uvicorn', '?')}, "
            f"Python {versions.get('python', '?')}), "
            "on redis-py's default (non-blocking) pool of the same size"
        )
    else:
        rows.append(
            http.Row("3", f"`GET {ASYNC}` vs fastapi-plugins", "", "", "", ">= 1.00x", "not run")
        )
        notes.append(f"3: fastapi-plugins was not measured: {peer_note}")

    elapsed = time.perf_counter() - started
    http.print_report(
        f"Redis counters on {mask_secrets(url)}: opa (examples/redis) against bare FastAPI and "
        f"fastapi-plugins; {load}, load from {args.loadgen}; redis-py {redis_version}, walrus "
        f"{package_version('walrus')}, Python {platform.python_version()}; median rates of "
        f"alternating rounds, each on fresh servers; median per-round ratios with their 95% "
        f"bootstrap interval; {elapsed:.0f} s.\n",
        rows,
        notes,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
