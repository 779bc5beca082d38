"""Ports for test servers, chosen so that no other process can take them first.

Ports are chosen outside the kernel's ephemeral range, which outgoing connections draw
from; a server that still finds its port taken (by another test choosing the same one) is
started again on a fresh port, a bounded number of times (:func:`on_free_port`); a server
counts as ready only once the process started here is the one listening
(:func:`listening_ports`), not whoever answers; a server started on port 0 has its port
read back (:func:`bound_port`); and a port that must refuse connections is held, bound and
never listened on, so no server can start there (:func:`holding_closed_port`,
:func:`closed_port`). Only the standard
library is imported here.
"""

from __future__ import annotations

import atexit
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

LOCALHOST = "127.0.0.1"
START_TIMEOUT = 15.0
PROBE_TIMEOUT = 0.5
PORT_ATTEMPTS = 5
# Ports of the band tried, by binding each, before the kernel's pick.
PORT_PICKS = 100
# Chosen ports come from here up to the start of the ephemeral range: high enough to miss
# the usual services, below the ports the kernel gives outgoing connections.
PORT_BAND_START = 20000
# What servers print when their port is taken (redis-server, uvicorn, nx-27017, RabbitMQ).
ADDRESS_IN_USE = ("address already in use", "eaddrinuse", "in use by another node")


class ServiceUnavailable(Exception):
    """A backend that a test needs could not be reached or started; the message says what
    was tried."""


class PortTaken(ServiceUnavailable):
    """A started server could not bind its port: another process took it first."""


def port_accepts(port: int, host: str = LOCALHOST, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when something accepts a TCP connection there."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535  # the IANA range, which BSD and macOS use


def _bound_to(port: int) -> socket.socket | None:
    """A socket bound to *port* on :data:`LOCALHOST`, or None when the port is taken."""
    sock = socket.socket()
    try:
        # No SO_REUSEADDR: a port still in TIME_WAIT is not free for a server that wants it.
        sock.bind((LOCALHOST, port))
    except OSError:
        sock.close()
        return None
    return sock


def _bound_socket() -> socket.socket:
    """A socket bound to a free port, outside the kernel's ephemeral range when it can be.

    Ports are tried by binding them, so one taken between the pick and the bind is passed
    over for the next pick, never lost to a race. Failing that, the kernel's pick.
    """
    low, _ = _ephemeral_range()
    if low - PORT_BAND_START >= 1000:
        for _ in range(PORT_PICKS):
            sock = _bound_to(random.randrange(PORT_BAND_START, low))
            if sock is not None:
                return sock
    sock = _bound_to(0)
    if sock is None:
        raise ServiceUnavailable(
            f"no port on {LOCALHOST} could be bound, not even one the kernel picks"
        )
    return sock


@contextmanager
def holding_closed_port() -> Iterator[int]:
    """A port that refuses connections for the length of the block, and no one can take.

    It is bound here and never listened on: a connection is refused at once, and no other
    process can bind it while the block runs, as one could a port that is merely free.
    """
    with _bound_socket() as sock:
        port: int = sock.getsockname()[1]
        yield port


def free_port() -> int:
    """A port that nothing uses right now, outside the kernel's ephemeral range.

    A port the kernel picks (bind to port 0) is an ephemeral one, which any outgoing
    connection may take before a server binds it; outside that range only a process
    choosing ports the same way can. Failing that, the kernel's pick. The port is let go
    on return: one that must stay closed is held with :func:`closed_port`.
    """
    with holding_closed_port() as port:
        return port


_held_ports = ExitStack()
atexit.register(_held_ports.close)


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections until the test process ends.

    For options that name a bare port number, which a test may dial at any point, teardown
    included (the compliance suite's ``unreachable_options``, say). The port is held with
    :func:`holding_closed_port`, so no private server of another test can start on it
    meanwhile, as one could on a port that was merely free. Each call keeps one socket open;
    a test that knows how long it needs the port uses ``holding_closed_port()`` instead.
    """
    return _held_ports.enter_context(holding_closed_port())


def on_free_port(start: Callable[[int], T], what: str, attempts: int = PORT_ATTEMPTS) -> T:
    """``start(port)`` on a free port, on a fresh one each time it raises :class:`PortTaken`.

    Bounded: after *attempts* ports taken in a row, a :class:`ServiceUnavailable` says so.
    """
    for _ in range(attempts - 1):
        try:
            return start(free_port())
        except PortTaken:
            continue
    try:
        return start(free_port())
    except PortTaken as error:
        raise ServiceUnavailable(
            f"{what}: {attempts} free ports in a row were taken before it could bind one; "
            f"last: {error}"
        ) from error


def _listening_inodes() -> dict[int, int] | None:
    """Socket inode to port, for every TCP socket listening; None without Linux's /proc."""
    found: dict[int, int] = {}
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return None
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A":  # 0A is LISTEN
                found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def listening_ports(pid: int) -> set[int] | None:
    """The TCP ports process *pid* listens on; None where that cannot be read (no /proc)."""
    listening = _listening_inodes()
    if listening is None:
        return None
    ports: set[int] = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return ports  # gone, or not ours to read: it listens on nothing we can see
    for descriptor in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except OSError:
            continue
        if target.startswith("socket:["):
            port = listening.get(int(target[len("socket:[") : -1]))
            if port is not None:
                ports.add(port)
    return ports


def listens_on(pid: int, port: int) -> bool:
    """True when process *pid* itself listens on *port* (without /proc: anyone accepting)."""
    ports = listening_ports(pid)
    return port_accepts(port) if ports is None else port in ports


def bound_port(process: subprocess.Popen[Any], what: str, timeout: float = START_TIMEOUT) -> int:
    """The port a server started with port 0 listens on, read back once it has bound one.

    The kernel picks a port nobody holds, so nothing can take it first. Linux only (the
    port is read from /proc); raises :class:`ServiceUnavailable` when the process exits or
    binds nothing within *timeout*.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ports = listening_ports(process.pid)
        if ports is None:
            raise ServiceUnavailable(f"{what}: reading back its port needs Linux's /proc")
        if ports:
            return min(ports)
        if process.poll() is not None:
            raise ServiceUnavailable(f"{what} exited with code {process.returncode}")
        time.sleep(0.05)
    raise ServiceUnavailable(f"{what} listened on no port within {timeout:g}s")


def port_taken_by_another(log: Path) -> bool:
    """True when a server's log says its port was in use."""
    try:
        text = log.read_text(errors="replace").lower()
    except OSError:
        return False
    return any(marker in text for marker in ADDRESS_IN_USE)
