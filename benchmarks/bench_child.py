"""The child-process side of the benchmarks: each command measures one thing, prints JSON.

``python bench_child.py <command> <args...>``. Only json, sys and time are imported at the
top, so import and start-up timings begin from a clean interpreter.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

Samples = dict[str, list[float]]


def emit(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


def alternate(statements: dict[str, str], env: dict[str, Any], number: int, rounds: int) -> Samples:
    """ns per execution of each statement, the statements taking turns round after round.

    Timed in CPU time of this process, so time spent descheduled by other load is not counted.
    """
    import timeit

    timers = {
        key: timeit.Timer(stmt, timer=time.process_time, globals=env)
        for key, stmt in statements.items()
    }
    samples: Samples = {key: [] for key in statements}
    for _ in range(rounds):
        for key, timer in timers.items():
            samples[key].append(timer.timeit(number) / number * 1e9)
    return samples


def hook(settings_dir: str, number: str, rounds: str) -> None:
    from bench_fixtures import HOOK_NAME

    import opa

    opa.create_app(settings_dir=settings_dir)
    winner = opa.get_plugin_manager().hooks.winner(HOOK_NAME)
    if winner is None:
        sys.exit(f"hook {HOOK_NAME} has no implementation")
    env = {"opa": opa, "instance": winner(), "x": 42}
    if opa.call_hook(HOOK_NAME, 42) != 42:
        sys.exit("call_hook returned the wrong value")
    statements = {"call_hook": f"opa.call_hook({HOOK_NAME!r}, x)", "direct": "instance.run(x)"}
    emit(alternate(statements, env, int(number), int(rounds)))


def instance(settings_dir: str, number: str, rounds: str) -> None:
    from bench_fixtures import COMPONENT
    from fastapi.testclient import TestClient

    import opa

    def plain(name: str) -> str:
        return name

    app = opa.create_app(settings_dir=settings_dir)
    with TestClient(app):
        if opa.get_instance(COMPONENT) is None:
            sys.exit(f"component {COMPONENT} has no instance")
        env = {"opa": opa, "plain": plain}
        statements = {"get_instance": f"opa.get_instance({COMPONENT!r})", "plain": "plain('x')"}
        emit(alternate(statements, env, int(number), int(rounds)))


def startup_opa(settings_dir: str) -> None:
    start = time.perf_counter()
    from fastapi.testclient import TestClient

    import opa

    imported = time.perf_counter()
    app = opa.create_app(settings_dir=settings_dir)
    built = time.perf_counter()
    with TestClient(app):
        ready = time.perf_counter()
        phases = {"import": imported - start, "build": built - imported, "lifespan": ready - built}
        emit({"phases": phases, "cpu": time.process_time()})


def startup_bare(plugin_dir: str) -> None:
    start = time.perf_counter()
    import importlib
    from pathlib import Path

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    imported = time.perf_counter()
    sys.path.insert(0, plugin_dir)
    names = sorted(path.stem for path in Path(plugin_dir).glob("*.py"))
    modules = [importlib.import_module(name) for name in names]
    app = FastAPI()
    for module in modules:
        app.include_router(module.router)
    built = time.perf_counter()
    with TestClient(app):
        ready = time.perf_counter()
        phases = {"import": imported - start, "build": built - imported, "lifespan": ready - built}
        emit({"phases": phases, "cpu": time.process_time()})


def import_time(which: str) -> None:
    """Seconds to import opa or fastapi; for opa, the backend modules ``opa.main`` pulled in."""
    start = time.perf_counter()
    if which == "opa":
        import opa
    else:
        import fastapi  # noqa: F401
    seconds = time.perf_counter() - start
    backends: list[str] = []
    if which == "opa":
        from bench_fixtures import BACKENDS

        import opa.main  # noqa: F401

        backends = sorted({name.partition(".")[0] for name in sys.modules} & set(BACKENDS))
    emit({"seconds": seconds, "backends": backends})


def loadgen(url: str, total: str, concurrency: str) -> None:
    """Fallback load: *total* keep-alive GETs over *concurrency* raw asyncio connections.

    A hand-written HTTP/1.1 client, because an httpx AsyncClient tops out near a tenth of
    what one uvicorn worker serves, which would measure the client instead of the server.
    """
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    count, workers = int(total), int(concurrency)
    remaining, errors = count, 0

    async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        errors += not head.startswith(b"HTTP/1.1 200")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)

    async def run() -> dict[str, Any]:
        nonlocal remaining
        connections = [await asyncio.open_connection(host, port) for _ in range(workers)]
        await asyncio.gather(*(get(*connection) for connection in connections))  # warm up

        async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await get(reader, writer)

        start = time.perf_counter()
        await asyncio.gather(*(worker(*connection) for connection in connections))
        seconds = time.perf_counter() - start
        for _, writer in connections:
            writer.close()
        return {"requests": count, "seconds": seconds, "errors": errors}

    emit(asyncio.run(run()))


def asgi_hello(switch: str, state: str, number: str) -> None:
    """CPU us of one ``GET /hello`` through an app with the setting *switch* on or off
    (*state*), alone in this process; a first pass warms it up."""
    import asyncio

    from bench_metrics import HELLO, _asgi_hello_us

    from opa.testing import build_app

    app = build_app({"PLUGIN_PATHS": [str(HELLO)], switch: state == "on", "LOG_LEVEL": "ERROR"})
    asyncio.run(_asgi_hello_us(app, min(int(number), 500)))
    emit({"us": asyncio.run(_asgi_hello_us(app, int(number)))})


COMMANDS = {
    "asgi-hello": asgi_hello,
    "hook": hook,
    "instance": instance,
    "startup-opa": startup_opa,
    "startup-bare": startup_bare,
    "import": import_time,
    "loadgen": loadgen,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
