"""What bounding a command and pooling cost the asyncio Redis client, per command.

The figures behind redis-aioredis's deadline and pool (its README, "How commands are
bounded"): ``INCR`` with 32 commands in flight, client CPU time per command, the minimum
over interleaved rounds, for redis-py's defaults, its socket timeout, ``asyncio.timeout``
around each command, the driver's deadline, and the two pools.

    python benchmarks/bench_redis_client.py [--rounds 12] [--commands 2000] [--url URL]

Uses the redis-py of this interpreter, so running it under several environments compares
versions. Redis is 127.0.0.1:6379 database 9 unless --url names another; the one key it
writes, under ``opa-bench:``, is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis

from opa_driver_redis_aioredis.deadline import DeadlineRedis
from opa_driver_redis_aioredis.pool import WaitingConnectionPool

TIMEOUT = 5.0
COMMON: dict[str, Any] = {"max_connections": 50, "socket_connect_timeout": TIMEOUT}


class TimeoutPerCommand(Redis):
    """The plain alternative to the driver's deadline: ``asyncio.timeout`` per command."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        async with asyncio.timeout(TIMEOUT):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def clients(url: str) -> dict[str, Callable[[], Redis]]:
    return {
        "redis-py defaults": lambda: Redis(connection_pool=ConnectionPool.from_url(url, **COMMON)),
        "socket_timeout + blocking pool": lambda: Redis(
            connection_pool=BlockingConnectionPool.from_url(
                url, timeout=TIMEOUT, socket_timeout=TIMEOUT, **COMMON
            )
        ),
        "asyncio.timeout + blocking pool": lambda: TimeoutPerCommand(
            connection_pool=BlockingConnectionPool.from_url(url, timeout=None, **COMMON)
        ),
        "deadline + blocking pool": lambda: DeadlineRedis(
            connection_pool=BlockingConnectionPool.from_url(url, timeout=None, **COMMON),
            command_timeout=TIMEOUT,
        ),
        "deadline + plain pool": lambda: DeadlineRedis(
            connection_pool=ConnectionPool.from_url(url, **COMMON), command_timeout=TIMEOUT
        ),
        "deadline + waiting pool (the driver)": lambda: DeadlineRedis(
            connection_pool=WaitingConnectionPool.from_url(url, **COMMON),
            command_timeout=TIMEOUT,
        ),
    }


async def measure(url: str, rounds: int, commands: int, in_flight: int) -> dict[str, float]:
    """The minimum client CPU time per command, in microseconds, of each client."""
    key = f"opa-bench:client:{uuid.uuid4().hex[:8]}"
    made = {name: make() for name, make in clients(url).items()}
    best = dict.fromkeys(made, float("inf"))
    try:
        for _ in range(rounds):
            for name, client in made.items():
                slots = asyncio.Semaphore(in_flight)

                async def one(client: Redis = client, slots: asyncio.Semaphore = slots) -> None:
                    async with slots:
                        await client.incr(key)

                started = time.process_time()
                await asyncio.gather(*(one() for _ in range(commands)))
                spent = (time.process_time() - started) / commands * 1e6
                best[name] = min(best[name], spent)
    finally:
        first = next(iter(made.values()))
        await first.delete(key)
        for client in made.values():
            await client.aclose()
            await client.connection_pool.aclose()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=32)
    args = parser.parse_args(argv)
    best = asyncio.run(measure(args.url, args.rounds, args.commands, args.in_flight))
    print(f"redis-py {redis.__version__}, {args.in_flight} in flight, client CPU µs per command")
    print("| client | µs |\n| --- | ---: |")
    for name, micros in best.items():
        print(f"| {name} | {micros:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
