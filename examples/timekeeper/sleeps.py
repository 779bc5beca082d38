"""Three ways to wait, to show which ones let the server handle other requests meanwhile.

Each route answers with the moments its handler started and ended on the server's
monotonic clock, so a client that sends several requests at once can see whether the
server ran them side by side (the intervals overlap) or one after another.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated

from fastapi import Path

from opa import get_router

router = get_router()

Seconds = Annotated[float, Path(ge=0, le=5, description="seconds to sleep, 0 to 5")]


def report(seconds: float, start: float) -> dict[str, float | int | str]:
    """What every sleep route answers: the sleep, when it ran, and on which thread."""
    return {
        "slept": seconds,
        "start": start,
        "end": time.monotonic(),
        "thread": threading.current_thread().name,
        "thread_id": threading.get_ident(),
    }


@router.get("/sleep-async/{seconds}")
async def sleep_async(seconds: Seconds) -> dict[str, float | int | str]:
    """Non-blocking: awaits asyncio.sleep, so the event loop serves others meanwhile."""
    start = time.monotonic()
    await asyncio.sleep(seconds)
    return report(seconds, start)


@router.get("/sleep-sync/{seconds}")
def sleep_sync(seconds: Seconds) -> dict[str, float | int | str]:
    """Blocking call in a plain def: FastAPI runs it in its threadpool, off the event loop."""
    start = time.monotonic()
    time.sleep(seconds)
    return report(seconds, start)


@router.get("/sleep-blocking/{seconds}")
async def sleep_blocking(seconds: Seconds) -> dict[str, float | int | str]:
    """The anti-example: a blocking call inside async def stops the whole event loop."""
    start = time.monotonic()
    time.sleep(seconds)  # wrong on purpose: use `await asyncio.sleep` or a plain def
    return report(seconds, start)
