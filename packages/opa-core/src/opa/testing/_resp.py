"""One Redis command over a plain socket, for the test kit's servers.

The kit sets up and watches Redis deployments (replication, sentinels) with a few commands,
and must not need redis-py for it: opa-core imports no backend library. Only the standard
library is imported here.
"""

from __future__ import annotations

import socket
from typing import BinaryIO, TypeAlias

from opa.testing._ports import LOCALHOST, PROBE_TIMEOUT

Reply: TypeAlias = str | int | list["Reply"] | None


class ReplyError(Exception):
    """The server answered the command with an error (``-ERR ...``)."""


def redis_command(
    port: int,
    *args: str | int,
    password: str | None = None,
    host: str = LOCALHOST,
    timeout: float = PROBE_TIMEOUT,
) -> Reply:
    """Send one command (after ``AUTH`` when *password* is given) and return its reply.

    Bulk strings come back decoded; an error reply raises :class:`ReplyError`, a server that
    is gone or silent raises ``OSError``.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        reader = sock.makefile("rb")
        if password is not None:
            sock.sendall(_encode(("AUTH", password)))
            _read(reader)
        sock.sendall(_encode(args))
        return _read(reader)


def _encode(args: tuple[str | int, ...]) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        parts += [f"${len(data)}\r\n".encode(), data, b"\r\n"]
    return b"".join(parts)


def _read(reader: BinaryIO) -> Reply:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("the server closed the connection before replying")
    kind, body = line[:1], line[1:-2].decode(errors="replace")
    if kind == b"+":
        return body
    if kind == b"-":
        raise ReplyError(body)
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        return None if size < 0 else reader.read(size + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read(reader) for _ in range(count)]
    raise ConnectionError(f"not a Redis reply: {line[:40]!r}")


def as_fields(reply: Reply) -> dict[str, str]:
    """A flat ``[name, value, name, value, ...]`` reply (``SENTINEL MASTER``) as a dict."""
    items = reply if isinstance(reply, list) else []
    return {str(name): str(value) for name, value in zip(items[::2], items[1::2], strict=True)}


def info_fields(reply: Reply) -> dict[str, str]:
    """An ``INFO`` reply's ``name:value`` lines as a dict."""
    fields: dict[str, str] = {}
    for line in str(reply).splitlines():
        name, colon, value = line.partition(":")
        if colon and not name.startswith("#"):
            fields[name] = value
    return fields
