"""Ports for test servers: free ones, held ones, and ones read back from a process."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from opa.testing._ports import (
    PortTaken,
    ServiceUnavailable,
    bound_port,
    closed_port,
    free_port,
    holding_closed_port,
    listening_ports,
    on_free_port,
    port_accepts,
)
from support import listening_port


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range."""
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def bindable(port: int) -> bool:
    """True when this process can bind *port* on 127.0.0.1 now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_free_port_is_bindable_and_outside_the_ephemeral_range() -> None:
    """Ports come from below the range outgoing connections use, so no client takes them."""
    low = ephemeral_low()
    for _ in range(20):
        port = free_port()
        assert port < low
        assert bindable(port)


def test_listening_ports_reads_back_what_a_process_listens_on() -> None:
    """listening_ports(pid) finds this process's listener, and not a port it does not hold."""
    with listening_port() as port:
        ports = listening_ports(os.getpid())
        assert ports is not None and port in ports
    assert port not in (listening_ports(os.getpid()) or set())


def test_on_free_port_retries_a_taken_port_and_gives_up_bounded() -> None:
    """A start that finds its port taken is tried on fresh ports, at most PORT_ATTEMPTS times."""
    tried: list[int] = []

    def taken_twice(port: int) -> int:
        tried.append(port)
        if len(tried) <= 2:
            raise PortTaken(f"port {port} in use")
        return port

    assert on_free_port(taken_twice, "a server") == tried[-1]
    assert len(tried) == 3

    def always_taken(port: int) -> int:
        raise PortTaken(f"port {port} in use")

    with pytest.raises(ServiceUnavailable, match=r"a server: 5 free ports in a row were taken"):
        on_free_port(always_taken, "a server")


def test_closed_port_refuses_connections_and_no_one_can_take_it() -> None:
    """A held port refuses connections and cannot be bound by anyone until the block ends."""
    with holding_closed_port() as port:
        assert port < ephemeral_low()
        assert not port_accepts(port)
        assert not bindable(port)
    assert bindable(port)


def test_closed_port_passes_over_a_port_taken_before_its_bind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A port another socket takes between the pick and the bind is passed over, not lost."""
    with listening_port() as taken:
        picks = iter([taken])
        real_randrange = random.randrange
        monkeypatch.setattr(
            random, "randrange", lambda low, high: next(picks, None) or real_randrange(low, high)
        )
        with holding_closed_port() as port:
            assert next(picks, None) is None, "the taken port was never tried"
            assert port != taken
            assert not port_accepts(port)
            assert not bindable(port)


def test_closed_port_says_so_when_no_port_can_be_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every bind refused, holding_closed_port() raises ServiceUnavailable, not OSError."""

    def refuse(sock: socket.socket, address: object) -> None:
        raise OSError("address already in use")

    monkeypatch.setattr(socket.socket, "bind", refuse)
    with (
        pytest.raises(ServiceUnavailable, match=r"no port on 127\.0\.0\.1 could be bound"),
        holding_closed_port(),
    ):
        pass


def test_the_compliance_closed_port_stays_held_after_the_call() -> None:
    """The suite's closed_port() is still refusing and unbindable long after it returned."""
    port = closed_port()
    assert port < ephemeral_low()
    assert not port_accepts(port)
    assert not bindable(port)
    assert all(free_port() != port for _ in range(50))


def start(code: str) -> subprocess.Popen[bytes]:
    """A Python child process running *code*."""
    return subprocess.Popen([sys.executable, "-c", code])


def test_bound_port_names_a_server_that_exits() -> None:
    """A server that exits before binding is reported with its name and exit code."""
    process = start("raise SystemExit(3)")
    with pytest.raises(ServiceUnavailable, match=r"^a test server exited with code 3$"):
        bound_port(process, "a test server")


def test_bound_port_gives_up_on_a_server_that_binds_nothing() -> None:
    """A server that runs but listens on nothing is given up after the timeout, saying so."""
    process = start("import time; time.sleep(60)")
    try:
        with pytest.raises(
            ServiceUnavailable, match=r"^a test server listened on no port within 0.5s$"
        ):
            bound_port(process, "a test server", timeout=0.5)
    finally:
        process.kill()
        process.wait()


def test_bound_port_needs_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where listening ports cannot be read (no /proc), bound_port says that it needs them."""
    monkeypatch.setattr("opa.testing._ports.listening_ports", lambda pid: None)
    process = start("pass")
    process.wait()
    with pytest.raises(ServiceUnavailable, match=r"^a test server: reading back its port needs"):
        bound_port(process, "a test server")
