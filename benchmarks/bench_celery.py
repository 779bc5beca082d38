"""Celery through `opa worker` against a plain `celery -A module worker`, on one broker.

Both workers run the same no-op task (same name, same settings, each on a queue of its
own) side by side; the rounds alternate between them so drift on the machine hits both.
Measured per worker: the round trip of one task (enqueue to result, p50 and p95, one task
at a time) and the time 1,000 tasks sent at once take to all return. Prints a markdown
table and the ratios of the medians (opa / plain; the target is at most 1.05).

    python benchmarks/bench_celery.py [--broker URL] [--backend URL] [--rounds N]

Needs opa-driver-celery[redis] installed, RabbitMQ (default broker) and Redis (default backend,
database 12). Queues and result keys are named per run and removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

TARGET = 1.05
TASK = "bench.noop"
START_TIMEOUT = 60.0

PLAIN_MODULE = '''
"""A plain Celery app: the same settings as opa's component, no opa."""
from celery import Celery
from opa_driver_celery import SAFE_DEFAULTS

app = Celery("tasks", broker={broker!r}, backend={backend!r})
app.conf.update(SAFE_DEFAULTS)
app.conf.update({settings!r})


@app.task(name={task!r})
def noop():
    return None
'''

OPA_TASKS = """
from opa import get_instance

celery = get_instance("celery")


@celery.task(name={task!r})
def noop():
    return None
"""


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def settings_for(queue: str, prefix: str) -> dict[str, Any]:
    return {
        "task_default_queue": queue,
        "result_backend_transport_options": {"global_keyprefix": prefix},
        "result_expires": 600,
    }


def wait_ready(app: Any, queue: str, process: Any, log: Path) -> None:
    """Until a first task comes back (any log level), or the worker died or never answers."""
    deadline = time.monotonic() + START_TIMEOUT
    result = app.send_task(TASK, queue=queue)
    while not result.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"a worker did not start; see {log}")
        time.sleep(0.1)


def latency_ms(app: Any, queue: str, samples: int) -> list[float]:
    """Round trips of one task at a time, in milliseconds."""
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        app.send_task(TASK, queue=queue).get(timeout=30)
        times.append((time.perf_counter() - began) * 1000)
    return times


def burst_seconds(app: Any, queue: str, tasks: int) -> float:
    """Seconds from sending *tasks* tasks at once to having every result."""
    began = time.perf_counter()
    results = [app.send_task(TASK, queue=queue) for _ in range(tasks)]
    for result in results:
        result.get(timeout=120)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    """Run both workers, measure them in alternating rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--samples", type=int, default=100, help="round trips per round")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per burst")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--log-level", default="info", help="both workers' -l")
    args = parser.parse_args(argv)

    import redis
    import yaml
    from celery import Celery

    from opa import mask_secrets
    from opa.testing import LoggedProcess, clean_environ, delete_keys
    from opa_driver_celery import SAFE_DEFAULTS

    run = uuid.uuid4().hex[:10]
    prefix = f"opa-bench-{run}:"
    queues = {"opa": f"opa-bench-{run}-opa", "plain": f"opa-bench-{run}-plain"}
    folder = Path(tempfile.mkdtemp(prefix="opa-bench-celery-"))
    (folder / "bench_jobs").mkdir()
    (folder / "bench_jobs" / "__init__.py").write_text("")
    (folder / "bench_jobs" / "tasks.py").write_text(OPA_TASKS.format(task=TASK))
    (folder / "settings").mkdir()
    opts = {
        "BROKER_URL": args.broker,
        "BACKEND_URL": args.backend,
        "SETTINGS": settings_for(queues["opa"], prefix),
    }
    component = {"LOAD": "yes", "DRIVER": "celery", "OPTS": opts}
    opa_settings = {"PLUGIN_PATHS": [str(folder)], "OPTIONAL_COMPONENTS": {"CELERY": component}}
    (folder / "settings" / "settings.yaml").write_text(yaml.safe_dump({"default": opa_settings}))
    plain = PLAIN_MODULE.format(
        broker=args.broker,
        backend=args.backend,
        settings=settings_for(queues["plain"], prefix),
        task=TASK,
    )
    (folder / "plain_app.py").write_text(plain)

    env = clean_environ(folder / "settings")
    common = [
        "-l",
        args.log_level,
        "-c",
        str(args.concurrency),
        "--without-mingle",
        "--without-gossip",
    ]
    python = [sys.executable, "-m"]
    commands = {
        "opa": [*python, "opa", "worker", *common, "-n", f"opa-{run}@%h"],
        "plain": [*python, "celery", "-A", "plain_app", "worker", *common, "-n", f"plain-{run}@%h"],
    }
    client = Celery("bench", broker=args.broker, backend=args.backend)
    client.conf.update(SAFE_DEFAULTS)
    client.conf.update(settings_for(queues["opa"], prefix))
    latencies: dict[str, list[float]] = {"opa": [], "plain": []}
    bursts: dict[str, list[float]] = {"opa": [], "plain": []}
    try:
        with ExitStack() as stack:
            for name, command in commands.items():
                log = folder / f"{name}.log"
                process = stack.enter_context(LoggedProcess(command, log, env=env))
                wait_ready(client, queues[name], process.popen, log)
            for name in commands:  # warm-up: connections, pool processes, imports
                latency_ms(client, queues[name], 20)
            for round_number in range(args.rounds):
                order = list(commands) if round_number % 2 == 0 else list(reversed(commands))
                for name in order:  # ABBA..., so a trend in the machine's load hits both
                    latencies[name] += latency_ms(client, queues[name], args.samples)
                    bursts[name].append(burst_seconds(client, queues[name], args.tasks))
    finally:
        with client.connection_for_write() as connection:
            for queue in queues.values():
                with suppress(Exception):
                    connection.default_channel.queue_delete(queue)
                with suppress(Exception):
                    connection.default_channel.exchange_delete(queue)
        client.close()
        store = redis.Redis.from_url(args.backend)
        delete_keys(store, prefix)
        store.close()

    p50 = {name: statistics.median(values) for name, values in latencies.items()}
    p95 = {name: percentile(values, 0.95) for name, values in latencies.items()}
    burst = {name: statistics.median(values) for name, values in bursts.items()}
    rows = [
        ("round trip p50 (ms)", p50["opa"], p50["plain"]),
        ("round trip p95 (ms)", p95["opa"], p95["plain"]),
        (f"{args.tasks:,} no-op tasks (s, median)", burst["opa"], burst["plain"]),
        (
            "throughput (tasks/s)",
            args.tasks / burst["opa"],
            args.tasks / burst["plain"],
        ),
    ]
    broker = mask_secrets(args.broker)
    print(f"Celery worker: `opa worker` vs `celery -A plain_app worker` (broker {broker})")
    print(f"{args.rounds} rounds x {args.samples} round trips and one burst per worker\n")
    print("| measure | opa worker | plain celery | opa / plain |")
    print("| --- | ---: | ---: | ---: |")
    for label, opa_value, plain_value in rows:
        print(f"| {label} | {opa_value:.2f} | {plain_value:.2f} | {opa_value / plain_value:.3f} |")
    latency_ratio = p50["opa"] / p50["plain"]
    burst_ratio = burst["opa"] / burst["plain"]
    verdict = "met" if max(latency_ratio, burst_ratio) <= TARGET else "missed"
    print(
        f"\nratio of medians: round trip {latency_ratio:.3f}, burst {burst_ratio:.3f} "
        f"(target <= {TARGET}: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
