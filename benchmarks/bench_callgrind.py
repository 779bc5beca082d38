"""Instructions counted by valgrind's callgrind: the one figure machine noise cannot move.

A cost per request (or per call) is the difference between two runs of the same child
process, one doing more than the other, divided by how many more: what the child does to
start and stop cancels out. ``PYTHONHASHSEED`` is fixed, so dict and set layouts (and the
instructions they cost) are the same from run to run.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

TIMEOUT = 1800.0  # a child runs some fifty times slower under callgrind


def instructions(
    command: list[str],
    env: dict[str, str],
    drive: Callable[[subprocess.Popen[str]], None] | None = None,
) -> int:
    """Instructions callgrind counts for *command* run to its end; *drive*, when given, is
    called while it runs (to send it requests, then ask it to stop)."""
    with tempfile.TemporaryDirectory(prefix="opa-callgrind-") as folder:
        out = Path(folder) / "callgrind.out"
        full = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command]
        environ = env | {"PYTHONHASHSEED": "0"}
        with subprocess.Popen(
            full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environ
        ) as process:
            try:
                if drive is not None:
                    drive(process)
                _, stderr = process.communicate(timeout=TIMEOUT)
            except BaseException:
                process.kill()
                raise
    if process.returncode != 0:
        raise RuntimeError(f"callgrind run of {command} failed:\n{stderr[-2000:]}")
    match = re.search(r"Collected : (\d+)", stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{stderr[-2000:]}")
    return int(match.group(1))


def per_unit(count: Callable[[int], int], low: int, high: int) -> float:
    """Instructions per unit of work: ``(count(high) - count(low)) / (high - low)``, where
    ``count(n)`` is the instructions of a child that does *n* units."""
    return (count(high) - count(low)) / (high - low)
