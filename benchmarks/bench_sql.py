"""An insert-and-select route through opa's sqlalchemy-async driver, against bare FastAPI.

``GET /insert-select`` inserts a row, commits, and reads it back by its id, in an
``AsyncSession`` per request. opa serves it from a plugin with ``async_session("db")``; the
bare FastAPI app builds the same ``AsyncEngine`` (the driver's engine arguments for the same
URL, asyncpg) and its own session dependency. Both use one PostgreSQL database made for the
run. Each round starts a fresh uvicorn process for each app in turn (the order rotating), warms
it up and measures it; the ratio is the median of the per-round ratios with its 95% bootstrap
interval (as in ``bench_redis.py``, whose round-taking this reuses).

    python benchmarks/bench_sql.py [--url URL] [--rounds 9] [--requests 3000] [--loadgen auto]

The server is ``--url``, else ``OPA_TEST_POSTGRES_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``; a database ``opa_bench_<run>`` is created on
it and dropped at the end. Needs opa-core, opa-driver-sqlalchemy, asyncpg, uvicorn and httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from importlib.metadata import version
from pathlib import Path
from statistics import median
from typing import Any

import bench_http as http
from bench_redis import Variant, alternate, compare, verdict

from opa import mask_secrets
from opa.testing import clean_environ

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
ROUTE = "/insert-select"
TARGET = 0.95

STATEMENTS = """
INSERT = text("INSERT INTO bench_rows (note) VALUES (:note) RETURNING id")
SELECT = text("SELECT id FROM bench_rows WHERE id = :id")


async def insert_select(db: AsyncSession) -> int:
    row_id = (await db.execute(INSERT, {"note": "bench"})).scalar_one()
    await db.commit()
    return (await db.execute(SELECT, {"id": row_id})).scalar_one()
"""

PLUGIN = (
    """
from typing import Annotated

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from opa import get_router
from opa_driver_sqlalchemy import async_session

router = get_router()
Db = Annotated[AsyncSession, async_session("db")]
"""
    + STATEMENTS
    + f"""

@router.get("{ROUTE}")
async def route(db: Db) -> int:
    return await insert_select(db)
"""
)

BARE_APP = (
    """
\"\"\"Bare FastAPI: the same route on the same AsyncEngine, no opa.\"\"\"
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

URL = {url!r}
ENGINE = {engine!r}
factories: dict[str, async_sessionmaker[AsyncSession]] = {{}}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = create_async_engine(URL, **ENGINE)
    factories["db"] = async_sessionmaker(engine, expire_on_commit=False)
    yield
    await engine.dispose()


async def session() -> AsyncIterator[AsyncSession]:
    async with factories["db"]() as opened:
        yield opened


app = FastAPI(lifespan=lifespan)
Db = Annotated[AsyncSession, Depends(session)]
"""
    + STATEMENTS.replace("{", "{{").replace("}", "}}")
    + f"""

@app.get("{ROUTE}")
async def route(db: Db) -> int:
    return await insert_select(db)
"""
)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def engine_settings(url: str) -> tuple[str, dict[str, Any]]:
    """The URL and ``create_async_engine`` arguments the driver uses for *url* by default."""
    from opa_driver_sqlalchemy import AsyncSQLOptions
    from opa_driver_sqlalchemy.options import engine_arguments

    return engine_arguments(AsyncSQLOptions(URL=url))


def with_database(url: str, database: str) -> str:
    return f"{url.rsplit('/', 1)[0]}/{database}"


async def run_admin(url: str, *statements: str, autocommit: bool = False) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    full, kwargs = engine_settings(url)
    options = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    engine = create_async_engine(full, **kwargs, **options)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


@contextmanager
def bench_database(url: str) -> Iterator[str]:
    """A database of the run's own on the server at *url*, with its table; its URL."""
    name = f"opa_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(run_admin(url, f"CREATE DATABASE {name}", autocommit=True))
    try:
        own = with_database(url, name)
        asyncio.run(run_admin(own, "CREATE TABLE bench_rows (id SERIAL PRIMARY KEY, note TEXT)"))
        yield own
    finally:
        drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        asyncio.run(run_admin(url, drop, autocommit=True))


def write_opa_app(folder: Path, url: str) -> Path:
    """A plugin folder and settings serving the route with one sqlalchemy-async component."""
    (folder / "plugins").mkdir(parents=True)
    (folder / "plugins" / "bench_sql_route.py").write_text(PLUGIN)
    component = {"LOAD": "yes", "DRIVER": "sqlalchemy-async", "OPTS": {"URL": url}}
    settings = {
        "default": {
            "LOG_LEVEL": "WARNING",
            "PLUGIN_PATHS": [str(folder / "plugins")],
            "PLUGIN_ENTRY_POINTS": False,
            "OPTIONAL_COMPONENTS": {"DB": component},
        }
    }
    (folder / "settings").mkdir()
    (folder / "settings" / "settings.json").write_text(json.dumps(settings))
    return folder / "settings"


def write_bare_app(folder: Path, url: str) -> Path:
    full, kwargs = engine_settings(url)
    folder.mkdir(parents=True)
    (folder / "bare_sql.py").write_text(BARE_APP.format(url=full, engine=kwargs))
    return folder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help=f"PostgreSQL URL (default: {DEFAULT_URL})")
    parser.add_argument("--rounds", type=int, default=9, help="measured rounds per app")
    parser.add_argument("--requests", type=int, default=3_000, help="requests per round")
    parser.add_argument("--warmup", type=int, default=500, help="warm-up requests per server")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    return http.checked_args(parser, argv, ("rounds", "requests", "concurrency"))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the markdown table."""
    args = parse_args(argv)
    url = args.url or os.environ.get("OPA_TEST_POSTGRES_URL") or DEFAULT_URL
    started = time.perf_counter()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opa-bench-")))
        own = stack.enter_context(bench_database(url))
        say(f"sql: database {mask_secrets(own)}, a fresh server per round")
        opa_settings = write_opa_app(scratch / "opa", own)
        bare_dir = write_bare_app(scratch / "bare", own)
        launchers: dict[str, Callable[[], http.Server]] = {
            "opa": partial(
                http.start_server,
                "opa",
                "opa.main:app",
                scratch / "opa",
                clean_environ(opa_settings),
                scratch / "opa.log",
                path=ROUTE,
            ),
            "bare": partial(
                http.start_server,
                "bare",
                "bare_sql:app",
                bare_dir,
                clean_environ(),
                scratch / "bare.log",
                path=ROUTE,
            ),
        }
        variants = [Variant(name, launch, ROUTE) for name, launch in launchers.items()]

        def send(target: str, requests: int) -> float:
            return http.load(target, requests, args.concurrency, args.loadgen, scratch)

        say(f"sql: GET {ROUTE}, opa and bare")
        alternate(variants, args.rounds, lambda v: v.measure(send, args.warmup, args.requests))

    opa, bare = variants
    compared = compare(opa.rates, bare.rates)
    load = f"{args.requests:,} requests x {args.rounds} rounds, c={args.concurrency}"
    rows = [
        http.Row(
            "1",
            f"`GET {ROUTE}` (sqlalchemy-async, asyncpg) vs bare FastAPI, req/s",
            f"{median(opa.rates):,.0f}",
            f"{median(bare.rates):,.0f}",
            str(compared),
            f">= {TARGET}x",
            verdict(compared.ratio >= TARGET),
        )
    ]
    notes = [
        f"1: ratio of the medians {median(opa.rates) / median(bare.rates):.3f}; server CPU per "
        f"request, us: opa {median(opa.cpu_us):.0f}, bare {median(bare.cpu_us):.0f}; CPU per "
        f"request, opa/bare {compare(opa.cpu_us, bare.cpu_us)}"
    ]
    elapsed = time.perf_counter() - started
    http.print_report(
        f"Insert and select on {mask_secrets(url)} (a database of the run's own): opa against "
        f"bare FastAPI on the same engine settings; {load}, load from {args.loadgen}; "
        f"SQLAlchemy {version('sqlalchemy')}, asyncpg {version('asyncpg')}, Python "
        f"{platform.python_version()}; median rates of alternating rounds, each on fresh "
        f"servers; median per-round ratio with its 95% bootstrap interval; {elapsed:.0f} s.\n",
        rows,
        notes,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
