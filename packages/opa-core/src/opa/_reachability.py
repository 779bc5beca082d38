"""The cheap check ``LOAD`` auto and yes make before connecting: does host:port accept TCP?"""

from __future__ import annotations

import asyncio
import contextlib


async def unreachable_because(host: str, port: int, timeout: float) -> str | None:
    """None when host:port accepts TCP within *timeout*, else why not, with the likely fix."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return (
            f"{host}:{port} did not accept a connection within {timeout:g}s; is the server "
            "running there? If it is slow to accept, raise COMPONENT_CHECK_TIMEOUT"
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return f"{host}:{port} is unreachable ({reason}); is the server running there?"
    except (OverflowError, ValueError) as exc:  # a port over 65535, a host IDNA cannot encode
        return f"{host}:{port} is not a valid address ({exc}); fix the host or port in OPTS"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None
