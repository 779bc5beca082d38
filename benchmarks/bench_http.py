"""uvicorn servers in subprocesses, the load that measures them, and their resident memory."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from opa.testing import LoggedProcess, free_port, wait_for

CHILD = Path(__file__).with_name("bench_child.py")

# wrk runs for a duration, not a request count: this script stops its thread after a fixed
# number of responses and says so, and the caller then interrupts wrk's wait (SIGINT), so the
# reported duration ends with the last response.
WRK_SCRIPT = """
local limit, count = 0, 0
function init(args) limit = tonumber(args[1]) end
function response(status, headers, body)
  count = count + 1
  if count == limit then
    io.write("LIMIT\\n")
    io.flush()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass
class Server:
    """One uvicorn process; ``url`` is its ``path`` (``GET /hello`` unless told otherwise)."""

    name: str
    process: LoggedProcess
    port: int
    path: str = "/hello"

    @property
    def url(self) -> str:
        return self.at(self.path)

    def at(self, path: str) -> str:
        """The URL of *path* on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until ``url`` answers 200; fail with the server's log when it exits first."""

        def answers_200() -> bool:
            self.process.check_alive()
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for(answers_200, timeout, f"{self.name} server answering {self.path}")

    def stop(self) -> None:
        self.process.close()


def uvicorn_command(
    app: str,
    app_dir: Path,
    port: int,
    python: str = sys.executable,
    uvicorn_args: tuple[str, ...] = (),
) -> list[str]:
    """The command line of uvicorn serving *app* on *port*, quietly, as every bench serves."""
    command = [python, "-m", "uvicorn", app, "--app-dir", str(app_dir), *uvicorn_args]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    return [*command, "--no-access-log", "--log-level", "warning"]


def start_server(
    name: str,
    app: str,
    app_dir: Path,
    env: dict[str, str],
    log: Path,
    *,
    path: str = "/hello",
    python: str = sys.executable,
    uvicorn_args: tuple[str, ...] = (),
) -> Server:
    """uvicorn serving *app* under *python* (by default this interpreter), once *path*
    answers 200; *uvicorn_args* are added to its command line."""
    port = free_port()
    command = uvicorn_command(app, app_dir, port, python, uvicorn_args)
    server = Server(name, LoggedProcess(command, log, env=env, cwd=app_dir), port, path)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def wrk_path() -> str | None:
    return shutil.which("wrk")


def load(url: str, requests: int, concurrency: int, tool: str, scratch: Path) -> float:
    """Requests per second for *requests* GETs at *concurrency*, from a separate process."""
    if tool == "wrk":
        return wrk_load(url, requests, concurrency, scratch)
    command = [sys.executable, str(CHILD), "loadgen", url, str(requests), str(concurrency)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    if result["errors"]:
        print(f"  warning: the load generator saw {result['errors']} errors", file=sys.stderr)
    return float(result["requests"] / result["seconds"])


def wrk_load(url: str, requests: int, concurrency: int, scratch: Path) -> float:
    script = scratch / "fixed_count.lua"
    script.write_text(WRK_SCRIPT)
    command = ["wrk", "-t1", f"-c{concurrency}", "-d120s", "--timeout", "10s"]
    command += ["-s", str(script), url, "--", str(requests)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("LIMIT"):
                process.send_signal(signal.SIGINT)
    result = next(line for line in lines if line.startswith("RESULT "))
    done, micros, errors = (int(part) for part in result.split()[1:])
    if errors or done < requests:
        print(f"  warning: wrk got {done} responses and {errors} errors", file=sys.stderr)
    return done / (micros / 1e6)


@dataclass
class Row:
    """One line of a benchmark table: opa against its baseline, and the verdict."""

    number: str
    measurement: str
    opa: str
    baseline: str
    compared: str
    target: str
    result: str


def table(rows: list[Row]) -> str:
    """The markdown table every benchmark prints."""
    header = ("#", "measurement", "opa", "baseline", "opa vs baseline", "target", "result")
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|---|---|"]
    for row in rows:
        cells = (row.number, row.measurement, row.opa, row.baseline, row.compared)
        lines.append("| " + " | ".join((*cells, row.target, row.result)) + " |")
    return "\n".join(lines)


def print_report(heading: str, rows: list[Row], notes: list[str]) -> None:
    """A benchmark's heading, its table, and its notes as a list, as every part prints them."""
    print(heading)
    print(table(rows))
    print()
    for note in notes:
        print(f"- {note}")


def checked_args(
    parser: argparse.ArgumentParser, argv: list[str] | None, counts: tuple[str, ...]
) -> argparse.Namespace:
    """Parsed arguments, each of *counts* at least 1, and ``--loadgen auto`` (when the
    parser has it) resolved to wrk where it is installed."""
    args = parser.parse_args(argv)
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if getattr(args, "loadgen", None) == "auto":
        args.loadgen = "wrk" if wrk_path() else "python"
    return args
