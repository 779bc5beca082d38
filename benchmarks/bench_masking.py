"""What masking credentials costs per KB of text, at 1 KB, 100 KB and 1 MB.

``opa._masking.mask_secrets`` runs on every log line, uvicorn's access line included, so its
cost must stay linear whatever a client puts in a URL: the per-KB figure of each text
must be flat across the three sizes. Ordinary text is log-like (paths, queries, a URL with
a password now and then); the hostile texts are the shapes that made the old pattern
quadratic. Also measured: one ordinary access line, alone and through opa's whole
logging path, so masking's share of a request's log line is visible.

    python benchmarks/bench_masking.py [--rounds 5]

Figures are CPU time, the least of the rounds.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import time
from collections.abc import Callable

from opa import mask_secrets
from opa._log import setup_logging

SIZES = {"1 KB": 1_000, "100 KB": 100_000, "1 MB": 1_000_000}
ORDINARY_PIECE = (
    "GET /items/42?page=2&size=50&sort=name HTTP/1.1\" 200 component 'cache' "
    "(redis://:s3cret@cache.internal:6379/0) connected in 3.2 ms; user=bob plan=pro "
)
TEXTS: dict[str, Callable[[int], str]] = {
    "ordinary log text": lambda n: (ORDINARY_PIECE * (n // len(ORDINARY_PIECE) + 1))[:n],
    "x= then letters": lambda n: "x=" + "a" * (n - 2),
    "scheme then @ signs": lambda n: "redis://:" + "@" * (n - 9),
    "many ://": lambda n: "a://" * (n // 4),
    "quoted secret values": lambda n: 'password="a" ' * (n // 13),
    "mixed markers": lambda n: ("a://b:c@d=password=e @" * (n // 22 + 1))[:n],
}
ACCESS_ARGS = ("127.0.0.1:50000", "GET", "/items?page=2&size=50", "1.1", 200)
ACCESS_LINE = (
    "2026-11-30 14:27:49.123 | INFO     | uvicorn.protocols.http.h11_impl:473 - "
    '127.0.0.1:50000 - "GET /items?page=2&size=50 HTTP/1.1" 200\n'
)
FLAT = 2.0  # the largest per-KB figure of a text over its smallest, for a PASS


def least_cpu(function: Callable[[], object], rounds: int, floor: float = 0.05) -> float:
    """CPU seconds of one call: the least, over *rounds*, of enough calls to fill *floor*."""
    start = time.process_time()
    function()
    once = max(time.process_time() - start, 1e-7)
    number = max(1, int(floor / once))
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(number):
            function()
        best = min(best, (time.process_time() - start) / number)
    return best


def per_kb(rounds: int) -> dict[str, dict[str, float]]:
    """Microseconds of masking per KB, for every text at every size."""
    figures: dict[str, dict[str, float]] = {}
    for name, make in TEXTS.items():
        figures[name] = {}
        for size_name, size in SIZES.items():
            text = make(size)
            seconds = least_cpu(lambda text=text: mask_secrets(text), rounds)  # type: ignore[misc]
            figures[name][size_name] = seconds / (len(text) / 1000) * 1e6
        print(f"  {name}: done", file=sys.stderr, flush=True)
    return figures


def access_line_costs(rounds: int) -> tuple[float, float]:
    """Nanoseconds to mask one access line, and to log it through opa's sink."""
    masking = least_cpu(lambda: mask_secrets(ACCESS_LINE), rounds, floor=0.2)
    setup_logging("INFO", stream=io.StringIO())
    access = logging.getLogger("uvicorn.access")
    try:
        logging_cost = least_cpu(
            lambda: access.info('%s - "%s %s HTTP/%s" %d', *ACCESS_ARGS), rounds, floor=0.2
        )
    finally:
        setup_logging("INFO")
    return masking * 1e9, logging_cost * 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    figures = per_kb(args.rounds)
    masking_ns, logging_ns = access_line_costs(args.rounds)
    print(f"CPU µs per KB masked, least of {args.rounds} rounds; flat means max/min <= {FLAT}x\n")
    print("| text | " + " | ".join(SIZES) + " | max / min | result |")
    print("|---|" + "---:|" * len(SIZES) + "---:|---|")
    for name, row in figures.items():
        spread = max(row.values()) / min(row.values())
        cells = " | ".join(f"{row[size]:.2f}" for size in SIZES)
        verdict = "PASS" if spread <= FLAT else "MISS"
        print(f"| {name} | {cells} | {spread:.2f}x | {verdict} |")
    print(
        f"\nOne ordinary access line ({len(ACCESS_LINE)} characters): masking {masking_ns:,.0f} "
        f"ns; logging it through opa's sink, masking included, {logging_ns:,.0f} ns "
        f"({masking_ns / logging_ns:.0%} of it)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
