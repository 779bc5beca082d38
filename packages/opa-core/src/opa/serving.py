"""What `opa run` serves with: uvicorn's h11 protocol, guarded against hostile clients.

uvicorn has no header-read timeout, caps concurrency only per request once its head has
arrived, and lets h11 bound a head only while it is incomplete. :class:`GuardedH11Protocol`
adds, through uvicorn's documented ``http=`` option:

- limits on the request line (414) and on the headers (431), decided before any route runs,
  whether the head arrives at once or in pieces;
- a deadline for every head (``HEADER_TIMEOUT``), keep-alive requests included;
- a cap on open connections (``MAX_CONNECTIONS``): the oldest connection still waiting for
  its head makes room for a new one, otherwise the new one gets a quick 503;
- one log line per interval that counts what was refused, evicted, cut and rejected.

It builds on names uvicorn does not document (the packaged README says which and why), and
``tests/test_serving.py`` fails by name when one of them moves.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from collections import Counter, deque
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, ClassVar

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from opa._config import load_settings, typed
from opa._log import log

# Seconds between two sweeps for heads past their deadline, at most.
SWEEP_INTERVAL = 1.0
# ... and at least: each sweep walks every open connection, so a tiny HEADER_TIMEOUT (any
# positive number is a valid setting) must not make the loop sweep instead of serving. A head
# is then cut up to this much after its deadline.
SWEEP_FLOOR = 0.05
# Seconds covered by one "serving under pressure" line.
REPORT_INTERVAL = 5.0
# Open files kept out of the connection cap: listening sockets, components, logs, imports.
RESERVED_FILES = 256
# Seconds a refused or cut connection keeps reading (and dropping) what its client still
# sends after the answer, so that the client reads the answer instead of a reset. Up to half
# the cap may linger so at once (beyond that they are closed at once); the cap leaves the
# open files for them.
DRAIN_SECONDS = 1.0
# asyncio's exception-handler message when accept() fails for lack of descriptors or memory.
ACCEPT_ERROR = "socket.accept() out of system resource"

REFUSED = "refused"
EVICTED = "evicted"
TIMED_OUT = "timed_out"
OVERSIZED = "oversized"
MALFORMED = "malformed"
ACCEPT_ERRORS = "accept_errors"


@dataclass(frozen=True)
class ServingLimits:
    """The serving settings: seconds and bytes."""

    header_timeout: float
    max_request_line: int
    max_header_bytes: int
    max_connections: int
    shutdown_grace: float


def serving_limits(settings: Any) -> ServingLimits:
    """The serving limits of *settings*, as the settings model checked them at load."""
    values = typed(settings)
    return ServingLimits(
        header_timeout=values.HEADER_TIMEOUT,
        max_request_line=values.MAX_REQUEST_LINE,
        max_header_bytes=values.MAX_HEADER_BYTES,
        max_connections=values.MAX_CONNECTIONS,
        shutdown_grace=values.SHUTDOWN_GRACE,
    )


def raise_open_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard one; the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft


def accept_backlog(open_files: int) -> int:
    """The listen backlog: asyncio accepts up to this many sockets before any is admitted
    or refused, so it is kept to a small share of the open-file limit."""
    return max(64, min(2048, open_files // 8))


def connection_cap(limits: ServingLimits, open_files: int) -> int:
    """MAX_CONNECTIONS, lowered (with a warning) to what the open-file limit can hold."""
    # Connections open, half as many again draining, the backlog and the reserve must fit.
    room = max((open_files - RESERVED_FILES - accept_backlog(open_files)) * 2 // 3, 1)
    if limits.max_connections <= room:
        return limits.max_connections
    log.warning(
        "MAX_CONNECTIONS={} is more than the open-file limit ({}) leaves room for; serving "
        "at most {} connections. Raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower "
        "MAX_CONNECTIONS.",
        limits.max_connections,
        open_files,
        room,
    )
    return room


def _response(status: int, reason: str, body: str) -> bytes:
    payload = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + payload


URI_TOO_LONG = _response(414, "URI Too Long", "Request line too long")
HEADERS_TOO_LARGE = _response(431, "Request Header Fields Too Large", "Request headers too large")
REQUEST_TIMEOUT = _response(408, "Request Timeout", "Request head not received in time")
BAD_REQUEST = _response(400, "Bad Request", "Invalid HTTP request received.")
BUSY = _response(503, "Service Unavailable", "Too many connections")


class ConnectionGuard:
    """The connections of one serving process: the cap, the head deadlines, the counts."""

    def __init__(self, limits: ServingLimits, cap: int, backlog: int = 2048) -> None:
        self.limits = limits
        self.cap = cap
        self.backlog = backlog
        self.open: set[GuardedH11Protocol] = set()
        # (when its wait began, connection): oldest first, rebuilt by every sweep.
        self.waiting: deque[tuple[float, GuardedH11Protocol]] = deque()
        self.counts: Counter[str] = Counter()
        self.draining = 0
        self.max_draining = max(cap // 2, 1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task[None] | None = None
        self._watch_failed = False

    @classmethod
    def from_settings(cls, settings: Any) -> ConnectionGuard:
        limits = serving_limits(settings)
        open_files = raise_open_file_limit()
        return cls(limits, connection_cap(limits, open_files), accept_backlog(open_files))

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch this loop's connections, and fold its accept errors into the counts."""
        self._loop = loop
        previous = loop.get_exception_handler()

        def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if str(context.get("message", "")).startswith(ACCEPT_ERROR):
                self.counts[ACCEPT_ERRORS] += 1
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(on_loop_error)
        self._watch = loop.create_task(self._watch_heads())

    def admit(self, protocol: GuardedH11Protocol) -> bool:
        """Take *protocol* in, making room by evicting the oldest waiting head if need be."""
        if self._loop is not protocol.loop:
            self.watch(protocol.loop)
        if len(self.open) >= self.cap and not self._evict_oldest_waiting(protocol.loop.time()):
            self.counts[REFUSED] += 1
            return False
        self.open.add(protocol)
        self.waiting.append((protocol.head_since, protocol))
        return True

    def release(self, protocol: GuardedH11Protocol) -> None:
        self.open.discard(protocol)

    def drain(self, transport: asyncio.Transport) -> None:
        """Close *transport* once its client has read the answer written to it, or soon."""
        if self.draining >= self.max_draining or not transport.can_write_eof():
            transport.close()
            return
        self.draining += 1
        transport.set_protocol(_Drain(self))
        transport.write_eof()
        asyncio.get_running_loop().call_later(DRAIN_SECONDS, transport.abort)

    def _evict_oldest_waiting(self, now: float) -> bool:
        # A head younger than this may be a client about to send it: refuse the newcomer instead.
        youngest = now - min(1.0, self.limits.header_timeout / 2)
        while self.waiting:
            since, protocol = self.waiting[0]
            if since > youngest:
                return False
            self.waiting.popleft()
            if protocol in self.open and protocol.awaits_head_since(since):
                protocol.stop_waiting(BUSY)
                self.open.discard(protocol)
                self.counts[EVICTED] += 1
                return True
        return False

    def sweep(self, now: float) -> None:
        """Cut the heads past their deadline; list the rest, oldest first, for eviction."""
        deadline = now - self.limits.header_timeout
        waiting: list[tuple[float, GuardedH11Protocol]] = []
        for protocol in list(self.open):
            if protocol.transport.is_closing():
                self.open.discard(protocol)
            elif protocol.conn.their_state is h11.IDLE:
                if protocol.cycle is not protocol.seen_cycle:
                    # A response ended since the last sweep, and the wait for the next head
                    # with it: counting from now gives that head up to one interval more.
                    protocol.seen_cycle = protocol.cycle
                    protocol.head_since = now
                if protocol.head_since <= deadline:
                    protocol.stop_waiting(REQUEST_TIMEOUT)
                    self.open.discard(protocol)
                    self.counts[TIMED_OUT] += 1
                else:
                    waiting.append((protocol.head_since, protocol))
        waiting.sort(key=itemgetter(0))
        self.waiting = deque(waiting)

    def report(self) -> None:
        """One line for everything counted since the last one, if anything was."""
        counts, self.counts = self.counts, Counter()
        parts = [
            (REFUSED, f"connections refused over MAX_CONNECTIONS={self.cap}"),
            (EVICTED, "connections evicted while waiting for their head"),
            (TIMED_OUT, f"heads cut after HEADER_TIMEOUT={self.limits.header_timeout:g}s"),
            (OVERSIZED, "heads over MAX_REQUEST_LINE or MAX_HEADER_BYTES (414/431)"),
            (MALFORMED, "malformed heads (400)"),
            (ACCEPT_ERRORS, "accept errors (out of file descriptors or memory)"),
        ]
        said = [f"{counts[key]} {text}" for key, text in parts if counts[key]]
        if said:
            log.warning(
                "serving under pressure in the last {:g}s: {}; {} connections open",
                REPORT_INTERVAL,
                ", ".join(said),
                len(self.open),
            )

    async def _watch_heads(self) -> None:
        assert self._loop is not None
        interval = sweep_interval(self.limits.header_timeout)
        next_report = self._loop.time() + REPORT_INTERVAL
        while True:
            await asyncio.sleep(interval)
            now = self._loop.time()
            try:
                self.sweep(now)
                if now >= next_report:
                    self.report()
                    next_report = now + REPORT_INTERVAL
            except Exception:
                # Ending this task would end every head deadline for the life of the process.
                if not self._watch_failed:
                    self._watch_failed = True
                    log.exception("the serving guard's sweep failed; it goes on (said once)")


def sweep_interval(header_timeout: float) -> float:
    """Seconds between two sweeps: a quarter of HEADER_TIMEOUT, within the bounds above."""
    return max(SWEEP_FLOOR, min(SWEEP_INTERVAL, header_timeout / 4))


class _Drain(asyncio.Protocol):
    """What a refused or cut connection runs after its answer: it drops what arrives."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.draining -= 1


# Called directly rather than through super(): this runs for every event of every request.
_h11_next_event = h11.Connection.next_event


class HeadLimitedConnection(h11.Connection):
    """h11's server connection that answers 414 or 431 for a head over the limits."""

    def __init__(self, limits: ServingLimits, protocol: GuardedH11Protocol) -> None:
        # An incomplete head larger than both limits (and their CRLFs) is over one of them.
        bound = limits.max_request_line + limits.max_header_bytes + 4
        super().__init__(h11.SERVER, max_incomplete_event_size=bound)
        self.limits = limits
        self.protocol = protocol

    def next_event(self) -> Any:
        try:
            event = _h11_next_event(self)
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint != 431:  # h11's hint for "receive buffer too long"
                # Answered here rather than by uvicorn, which logs a line for each one.
                return self._reject(BAD_REQUEST, MALFORMED)
            buffered = self.trailing_data[0]
            line_end = buffered.find(b"\r\n")
            too_long = line_end == -1 or line_end > self.limits.max_request_line
            return self._reject(URI_TOO_LONG if too_long else HEADERS_TOO_LARGE)
        if type(event) is h11.Request:
            # "METHOD SP target SP HTTP/x.y"; each header "name: value" CRLF.
            line = len(event.method) + len(event.target) + len(event.http_version) + 7
            if line > self.limits.max_request_line:
                return self._reject(URI_TOO_LONG)
            headers = event.headers.raw_items()
            header_bytes = 4 * len(headers)
            for name, value in headers:
                header_bytes += len(name) + len(value)
            if header_bytes > self.limits.max_header_bytes:
                return self._reject(HEADERS_TOO_LARGE)
        return event

    def _reject(self, response: bytes, count: str = OVERSIZED) -> Any:
        if self.our_state is not h11.ERROR:
            self.send_failed()  # uvicorn then sends nothing more on this connection
        self.protocol.guard_of().counts[count] += 1
        self.protocol.cut(response)
        return h11.NEED_DATA  # uvicorn stops reading events: no route runs


def _send_without_delay(transport: asyncio.Transport) -> None:
    """Turn Nagle's algorithm off for a TCP connection, as asyncio does for the sockets it
    makes itself.

    asyncio skips a socket whose protocol number is 0, which is what uvicorn's bound socket
    has (``socket.socket(family)``), and so every connection ``opa run --workers N`` accepts
    on it: each answer's body, written after its head, then waited for the client's delayed
    ACK, about 40 ms a request (two workers served /hello at 0.21x of one).
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol under a :class:`ConnectionGuard`.

    ``opa run`` binds a guard built from its settings (:func:`guarded_protocol`); named by
    import string (``--http opa.serving:GuardedH11Protocol``), it builds one from the settings
    of the process serving it.
    """

    guard: ClassVar[ConnectionGuard | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = HeadLimitedConnection(self.guard_of().limits, self)
        self.head_since = 0.0  # loop time when this connection began waiting for a head
        self.seen_cycle: Any = None  # the request cycle the last sweep saw

    @classmethod
    def guard_of(cls) -> ConnectionGuard:
        if cls.guard is None:
            cls.guard = ConnectionGuard.from_settings(load_settings())
        return cls.guard

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _send_without_delay(transport)
        self.head_since = self.loop.time()
        if not self.guard_of().admit(self):
            self.cut(BUSY)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard_of().release(self)
        super().connection_lost(exc)

    def awaits_head_since(self, since: float) -> bool:
        """Still waiting for the head it began waiting for at *since*."""
        return (
            self.head_since == since
            and self.conn.their_state is h11.IDLE
            and not self.transport.is_closing()
        )

    def cut(self, response: bytes) -> None:
        """Answer *response* and close, whatever uvicorn was doing with this connection."""
        if self.transport.is_closing():
            return
        guard = self.guard_of()
        guard.release(self)
        # Out of uvicorn's hands, as its WebSocket upgrade does: connection_lost goes to the drain.
        self.connections.discard(self)
        self._unset_keepalive_if_required()
        self.transport.write(response)
        guard.drain(self.transport)

    def stop_waiting(self, response: bytes) -> None:
        """*response* to a client that sent part of a head; one that sent none is just closed,
        as its next request may be on its way and must not read this answer as its own."""
        if self.conn.trailing_data[0]:
            self.cut(response)
        else:
            self.transport.close()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    """A protocol class bound to *guard*, for ``uvicorn.Config(http=...)``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})
