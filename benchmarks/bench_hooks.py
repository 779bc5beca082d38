"""User hooks: a direct call of the winner against the same call through pluggy.

opa's user hooks (``HookDefinition`` / ``Hook``) run one implementation, the winner by
``order``. This measures what ``call_hook`` costs the way opa makes it (a dict lookup, then
the winner's ``run``) against routing the same call through a pluggy hook with that one
implementation registered (``firstresult``, arguments passed through), as opa once did:

    python benchmarks/bench_hooks.py                   # ns per call, CPU time, median
    python benchmarks/bench_hooks.py --callgrind       # instructions per call (valgrind)

Instructions per call come from two callgrind runs of each way, one with no calls and one
with ``--calls`` of them: the difference, divided by the calls, leaves interpreter start-up
and imports out. Needs ``valgrind`` on the PATH.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

import bench_callgrind as callgrind
import pluggy

from opa import Hook, HookDefinition
from opa._hooks import HookRegistry

NAME = "Fullname"


class Fullname(HookDefinition):
    pass


class DefaultFullname(Hook):
    name = NAME
    order = -1

    def run(self, first: str, last: str = "") -> str:
        return f"{first} {last}"


class LoudFullname(Hook):
    name = NAME

    def run(self, first: str, last: str = "") -> str:
        return f"{first} {last}".upper()


def direct_call() -> Callable[[], Any]:
    """``call_hook``'s path: the registry looks the winner up and calls its ``run``."""
    registry = HookRegistry()
    registry.add_definition(Fullname)
    registry.add_hook(DefaultFullname)
    registry.add_hook(LoudFullname)
    registry.finalize()
    return lambda: registry.call(NAME, ("ada",), {"last": "lovelace"})


def pluggy_call() -> Callable[[], Any]:
    """The same call through pluggy: one spec, the winner registered as its only plugin."""
    spec_marker, impl_marker = pluggy.HookspecMarker("bench"), pluggy.HookimplMarker("bench")

    class Spec:
        @spec_marker(firstresult=True)
        def Fullname(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            """Every opa hook passed the caller's arguments through unchanged."""

    run = LoudFullname().run

    class Winner:
        @impl_marker
        def Fullname(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return run(*args, **kwargs)

    manager = pluggy.PluginManager("bench")
    manager.add_hookspecs(Spec)
    manager.register(Winner())
    caller = manager.hook.Fullname
    return lambda: caller(args=("ada",), kwargs={"last": "lovelace"})


WAYS: dict[str, Callable[[], Callable[[], Any]]] = {"direct": direct_call, "pluggy": pluggy_call}


def ns_per_call(number: int, rounds: int) -> dict[str, float]:
    """Median CPU ns per call of each way, the ways taking turns round after round."""
    calls = {way: make() for way, make in WAYS.items()}
    assert calls["direct"]() == calls["pluggy"]() == "ADA LOVELACE"
    samples: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(rounds):
        for way, call in calls.items():
            timer = timeit.Timer(call, timer=time.process_time)
            samples[way].append(timer.timeit(number) / number * 1e9)
    return {way: statistics.median(values) for way, values in samples.items()}


def loop(way: str, calls: int) -> None:
    """The callgrind child: build the way, then call it *calls* times."""
    call = WAYS[way]()
    for _ in range(calls):
        call()


def instructions(way: str, calls: int) -> int:
    """Instructions callgrind counts for a child process that makes *calls* calls."""
    command = [sys.executable, __file__, "--loop", way, str(calls)]
    return callgrind.instructions(command, dict(os.environ))


def instructions_per_call(calls: int) -> dict[str, float]:
    return {way: callgrind.per_unit(partial(instructions, way), 0, calls) for way in WAYS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--callgrind", action="store_true", help="instructions per call")
    parser.add_argument("--calls", type=int, default=20_000, help="calls under callgrind")
    parser.add_argument("--loop", nargs=2, metavar=("WAY", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("number", "rounds", "calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.loop:
        loop(args.loop[0], int(args.loop[1]))
        return
    if args.callgrind:
        results, unit = instructions_per_call(args.calls), "instructions/call"
    else:
        results, unit = ns_per_call(args.number, args.rounds), "ns/call"
    for way, value in results.items():
        print(f"{way:8} {value:10.1f} {unit}")
    print(f"pluggy/direct: {results['pluggy'] / results['direct']:.2f}x")


if __name__ == "__main__":
    main()
