"""How an opa error ends a process: one masked ``error: ...`` line, never a traceback.

The ``opa`` command prints that line through click. ``opa.main`` and ``opa.worker`` are
imported by commands opa does not own (``uvicorn``, ``celery -A``), which would print the
traceback instead; they end the process here with the same line and status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from opa._errors import OpaError
from opa._masking import mask_secrets

EXIT_STATUS = 1


def error_line(message: str) -> str:
    """*message* as the one line a command ends with: masked, whitespace collapsed."""
    return f"error: {mask_secrets(' '.join(message.split()))}"


@contextmanager
def exit_on_opa_error() -> Iterator[None]:
    """Turn an :class:`OpaError` raised inside into its one line on stderr and status 1."""
    try:
        yield
    except OpaError as exc:
        print(error_line(str(exc)), file=sys.stderr, flush=True)
        raise SystemExit(EXIT_STATUS) from None
