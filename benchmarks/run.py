"""opa's performance budget, measured side by side against bare FastAPI in one run.

``python benchmarks/run.py [--quick] [--loadgen auto|wrk|python] [--only core,redis,...]``
prints opa-core's table, then the other parts (``bench_routing.py``, ``bench_masking.py``,
``bench_serving.py``, ``bench_workers.py``, ``bench_redis.py``, ``bench_cluster.py``,
``bench_breaker.py``, ``bench_metrics.py``, ``bench_tracing.py``, ``bench_mongodb.py``,
``bench_celery.py``, ``bench_sql.py``), each printing its own;
``--only`` picks some of them. ``nox -s bench`` runs this with what every part needs installed.

Nothing here asserts: a MISS is a number to look at, not a failure. Compared variants take
turns round after round and each figure is the median of its rounds, because the machine
this runs on is small and shared. CPU-time figures in the notes are less sensitive to other
load than the wall-clock ones the targets use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import bench_fixtures as fixtures
import bench_http as http

from opa.testing import clean_environ


@dataclass(frozen=True)
class Plan:
    http_rounds: int = 9
    http_requests: int = 30_000
    http_warmup: int = 5_000
    concurrency: int = 32
    micro_rounds: int = 9
    micro_number: int = 200_000
    startup_rounds: int = 9
    import_rounds: int = 11
    plugins: int = 200


QUICK = Plan(2, 3_000, 1_000, 32, 3, 50_000, 2, 3, 200)


@dataclass
class Report:
    rows: list[http.Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def ratio_of_pairs(first: Iterable[float], second: Iterable[float]) -> float:
    """The median of the per-round ratios: each round's two samples ran back to back."""
    return median(a / b for a, b in zip(first, second, strict=True))


def child(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    command = [sys.executable, str(http.CHILD), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env or clean_environ())
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def timed_child(*args: str) -> tuple[float, dict[str, Any]]:
    """Seconds from spawning a child to its first line of output, and that line."""
    command = [sys.executable, str(http.CHILD), *args]
    pipe = subprocess.PIPE
    start = time.perf_counter()
    with subprocess.Popen(
        command, stdout=pipe, stderr=pipe, text=True, env=clean_environ()
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        line = child.stdout.readline()
        seconds = time.perf_counter() - start
        errors = child.stderr.read()
    if child.returncode != 0 or not line:
        raise RuntimeError(f"{args[0]} failed:\n{errors[-3000:]}")
    return seconds, json.loads(line)


def alternating(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for number in range(rounds):
        for name, measure in variants.items():
            samples[name].append(measure())
        shown = ", ".join(f"{name} {values[-1]:.4g}" for name, values in samples.items())
        say(f"  round {number + 1}/{rounds}: {shown}")
    return samples


def throughput_and_memory(plan: Plan, tool: str, scratch: Path, report: Report) -> None:
    say(f"1/6 throughput of GET /hello, load from {tool}")
    settings, bare_dir = fixtures.hello_apps(scratch / "hello")
    env = clean_environ(settings)
    servers = [
        http.start_server("opa", "opa.main:app", settings.parent, env, scratch / "opa.log"),
        http.start_server("bare", "bare_hello:app", bare_dir, clean_environ(), scratch / "b.log"),
    ]
    cpu: dict[str, list[float]] = {server.name: [] for server in servers}

    def one(server: http.Server) -> Callable[[], float]:
        def measure() -> float:
            before = server.cpu_seconds()
            rate = http.load(server.url, plan.http_requests, plan.concurrency, tool, scratch)
            used = server.cpu_seconds() - before
            cpu[server.name].append(used / plan.http_requests * 1e6)
            return rate

        return measure

    try:
        idle = {server.name: server.rss_kib() / 1024 for server in servers}
        for server in servers:
            http.load(server.url, plan.http_warmup, plan.concurrency, tool, scratch)
        rates = alternating({server.name: one(server) for server in servers}, plan.http_rounds)
        rss = {server.name: server.rss_kib() / 1024 for server in servers}
    finally:
        for server in servers:
            server.stop()
    opa_rate, bare_rate = median(rates["opa"]), median(rates["bare"])
    ratio = opa_rate / bare_rate
    load = f"{plan.http_requests} requests x {plan.http_rounds} rounds, c={plan.concurrency}"
    report.rows.append(
        http.Row(
            "1",
            f"GET /hello throughput, req/s ({load}, {tool})",
            f"{opa_rate:,.0f}",
            f"{bare_rate:,.0f}",
            f"{ratio:.3f}x",
            ">= 0.97x",
            verdict(ratio >= 0.97),
        )
    )
    report.notes.append(
        f"1: median of per-round ratios {ratio_of_pairs(rates['opa'], rates['bare']):.3f}; "
        f"server CPU per request {median(cpu['opa']):.1f} us (opa) vs "
        f"{median(cpu['bare']):.1f} us (bare); bare/opa CPU per request, the throughput ratio "
        f"without other load: {ratio_of_pairs(cpu['bare'], cpu['opa']):.3f}"
    )
    rss_ratio = rss["opa"] / rss["bare"]
    report.rows.append(
        http.Row(
            "6",
            "served hello-world VmRSS after the throughput rounds, MiB",
            f"{rss['opa']:.1f}",
            f"{rss['bare']:.1f}",
            f"{rss_ratio:.3f}x",
            "<= 1.2x",
            verdict(rss_ratio <= 1.2),
        )
    )
    report.notes.append(f"6: VmRSS before any load {idle['opa']:.1f} vs {idle['bare']:.1f} MiB")


def call_hook_overhead(plan: Plan, scratch: Path, report: Report) -> None:
    say("2/6 call_hook against a direct call of run")
    settings = fixtures.hook_app(scratch / "hook")
    result = child("hook", str(settings), str(plan.micro_number), str(plan.micro_rounds))
    hook, direct = result["call_hook"], result["direct"]
    overhead = median(h - d for h, d in zip(hook, direct, strict=True))
    report.rows.append(
        http.Row(
            "2",
            "`opa.call_hook(name, x)` vs `instance.run(x)`, ns/call (CPU time)",
            f"{median(hook):.0f}",
            f"{median(direct):.0f}",
            f"+{overhead:.0f} ns",
            "<= +1000 ns",
            verdict(overhead <= 1000),
        )
    )


def get_instance_cost(plan: Plan, scratch: Path, report: Report) -> None:
    say("3/6 get_instance of a connected plugin-driver component")
    settings = fixtures.driver_app(scratch / "driver")
    result = child("instance", str(settings), str(plan.micro_number), str(plan.micro_rounds))
    cost = median(result["get_instance"])
    report.rows.append(
        http.Row(
            "3",
            "`opa.get_instance(name)`, ns/call (CPU time; baseline: a plain 1-arg call)",
            f"{cost:.0f}",
            f"{median(result['plain']):.0f}",
            "",
            "<= 500 ns",
            verdict(cost <= 500),
        )
    )


def startup(plan: Plan, scratch: Path, report: Report) -> None:
    say(f"4/6 start-up with {plan.plugins} plugins (fresh processes)")
    settings, folder = fixtures.many_plugins(scratch / "many", plan.plugins)
    details: dict[str, list[dict[str, Any]]] = {"opa": [], "bare": []}

    def run(name: str, *args: str) -> Callable[[], float]:
        def measure() -> float:
            seconds, result = timed_child(*args)
            details[name].append(result)
            return seconds * 1000

        return measure

    variants = {
        "opa": run("opa", "startup-opa", str(settings)),
        "bare": run("bare", "startup-bare", str(folder)),
    }
    for measure in variants.values():  # warm the bytecode caches and the file system
        measure()
    samples = alternating(variants, plan.startup_rounds)
    opa_ms, bare_ms = median(samples["opa"]), median(samples["bare"])
    ratio = opa_ms / bare_ms
    report.rows.append(
        http.Row(
            "4",
            f"start-up to ready, {plan.plugins} plugins x 2 routes, ms (spawn to lifespan entered)",
            f"{opa_ms:.0f}",
            f"{bare_ms:.0f}",
            f"{ratio:.3f}x",
            "<= 1.5x",
            verdict(ratio <= 1.5),
        )
    )
    runs = {name: results[1:] for name, results in details.items()}  # without the warm-up
    cpu = {name: median(r["cpu"] for r in results) * 1000 for name, results in runs.items()}
    split = {
        name: ", ".join(
            f"{phase} {median(r['phases'][phase] for r in results) * 1000:.0f}"
            for phase in results[0]["phases"]
        )
        for name, results in runs.items()
    }
    report.notes.append(
        f"4: CPU time to ready {cpu['opa']:.0f} vs {cpu['bare']:.0f} ms "
        f"({cpu['opa'] / cpu['bare']:.3f}x); phases in ms, opa: {split['opa']}; "
        f"bare: {split['bare']}"
    )


def imports(plan: Plan, scratch: Path, report: Report) -> None:
    say("5/6 what `import opa, opa.main` imports, and how long `import opa` takes")
    settings = fixtures.write_settings(scratch / "imports", [])
    env = clean_environ(settings)
    found: set[str] = set()

    def measure(which: str) -> Callable[[], float]:
        def once() -> float:
            result = child("import", which, env=env)
            found.update(result["backends"])
            return float(result["seconds"]) * 1000

        return once

    samples = alternating(
        {"opa": measure("opa"), "fastapi": measure("fastapi")}, plan.import_rounds
    )
    opa_ms, fastapi_ms = median(samples["opa"]), median(samples["fastapi"])
    report.rows.append(
        http.Row(
            "5",
            "backend modules loaded by `import opa, opa.main` (no components configured)",
            ", ".join(sorted(found)) or "none",
            "",
            "",
            "none",
            verdict(not found),
        )
    )
    report.rows.append(
        http.Row(
            "5b",
            "import time, ms: `import opa` vs `import fastapi` (fresh processes)",
            f"{opa_ms:.0f}",
            f"{fastapi_ms:.0f}",
            f"{opa_ms / fastapi_ms:.2f}x",
            "(info)",
            "info",
        )
    )
    report.notes.append(f"5: modules checked: {', '.join(fixtures.BACKENDS)}")


SECTIONS = (
    "core",
    "routing",
    "masking",
    "serving",
    "workers",
    "redis",
    "cluster",
    "breaker",
    "metrics",
    "tracing",
    "mongodb",
    "celery",
    "sql",
)

# Arguments of each driver benchmark's main() for a --quick run (a smoke run, not figures).
QUICK_ARGS = {
    "routing": ["--rounds", "3", "--requests", "1000"],
    "masking": ["--rounds", "2"],
    "serving": ["--rounds", "2", "--requests", "3000", "--callgrind-requests", "200"],
    "workers": ["--rounds", "1", "--requests", "2000"],
    "redis": ["--rounds", "2", "--requests", "2000", "--warmup", "500"],
    "cluster": ["--rounds", "2", "--requests", "2000", "--warmup", "500"],
    "breaker": ["--rounds", "2", "--requests", "2000", "--warmup", "500", "--stall-rounds", "1"],
    "metrics": ["--rounds", "2", "--requests", "2000", "--warmup", "500", "--calls", "2000"],
    "tracing": ["--rounds", "2", "--requests", "2000", "--warmup", "500", "--calls", "2000"],
    "mongodb": ["--rounds", "2", "--requests", "200"],
    "celery": ["--rounds", "1", "--samples", "20", "--tasks", "200"],
    "sql": ["--rounds", "2", "--requests", "1000", "--warmup", "200"],
}


def core(options: argparse.Namespace, tool: str) -> int:
    plan = QUICK if options.quick else Plan()
    started = time.perf_counter()
    report = Report()
    with tempfile.TemporaryDirectory(prefix="opa-bench-") as folder:
        scratch = Path(folder)
        throughput_and_memory(plan, tool, scratch, report)
        call_hook_overhead(plan, scratch, report)
        get_instance_cost(plan, scratch, report)
        startup(plan, scratch, report)
        imports(plan, scratch, report)
    report.rows.sort(key=lambda row: row.number)
    elapsed = time.perf_counter() - started
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load from {tool}, "
        f"medians of alternating rounds, {elapsed:.0f} s in all.\n"
    )
    print(http.table(report.rows))
    print()
    for note in sorted(report.notes):
        print(f"- {note}")
    return 0


def driver_section(name: str, options: argparse.Namespace, tool: str) -> int:
    """Import benchmarks/bench_<name>.py only now (it needs its drivers) and run its main()."""
    import importlib

    module = importlib.import_module(f"bench_{name}")
    argv = list(QUICK_ARGS[name]) if options.quick else []
    if name in ("redis", "cluster", "serving", "breaker", "workers", "metrics", "tracing", "sql"):
        argv += ["--loadgen", tool]
    code: int = module.main(argv)
    return code


TITLES = {
    "core": "opa-core against bare FastAPI",
    "routing": "Plugin routes: copied against include_router (benchmarks/bench_routing.py)",
    "masking": "Credential masking per KB of text (benchmarks/bench_masking.py)",
    "serving": "Serving layer: opa.serving against plain uvicorn h11 (benchmarks/bench_serving.py)",
    "workers": "API worker processes: opa run --workers 2 against 1 (benchmarks/bench_workers.py)",
    "redis": "Redis drivers (benchmarks/bench_redis.py)",
    "cluster": "Redis Cluster against one Redis server (benchmarks/bench_cluster.py)",
    "breaker": "Component breaker on a stalled and a healthy Redis (benchmarks/bench_breaker.py)",
    "metrics": "Prometheus metrics on against off (benchmarks/bench_metrics.py)",
    "tracing": "OpenTelemetry traces on against off (benchmarks/bench_tracing.py)",
    "mongodb": "MongoDB drivers (benchmarks/bench_mongodb.py)",
    "celery": "Celery driver (benchmarks/bench_celery.py)",
    "sql": "SQL driver: insert and select on PostgreSQL (benchmarks/bench_sql.py)",
}


def parse_only(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"choose from {', '.join(SECTIONS)} (comma-separated), not {value!r}"
        )
    return [name for name in SECTIONS if name in names]


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="opa's performance budget against bare FastAPI")
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--only",
        type=parse_only,
        default=list(SECTIONS),
        help=f"comma-separated parts to run, of {','.join(SECTIONS)} (default: all)",
    )
    options = parser.parse_args(argv)
    tool = options.loadgen
    if tool == "auto":
        tool = "wrk" if http.wrk_path() else "python"
    started = time.perf_counter()
    kind = "quick" if options.quick else "full"
    print(f"# opa benchmarks ({kind} run)\n")
    print(f"Load average (1, 5, 15 min) at the start: {load_average()}.\n")
    failed: list[str] = []
    for name in options.only:
        say(f"== {name}")
        print(f"## {TITLES[name]}\n", flush=True)
        try:
            code = core(options, tool) if name == "core" else driver_section(name, options, tool)
        except (Exception, SystemExit) as error:  # one part failing must not stop the others
            code = 1
            print(f"**Not measured**: {type(error).__name__}: {error}")
        if code:
            failed.append(name)
        print(flush=True)
    elapsed = time.perf_counter() - started
    print(f"Load average (1, 5, 15 min) at the end: {load_average()}; {elapsed:.0f} s in all.")
    if failed:
        print(f"\nParts that failed or saw errors: {', '.join(failed)}.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
