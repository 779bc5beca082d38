"""Reading what opa logs, inside a test."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from opa._log import setup_logging


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything opa's log sink writes at DEBUG inside the block, standard logging included.

    Afterwards opa's default sink (INFO, stderr) is configured again and the root logger's
    handlers are put back, so pytest's own log capture keeps working.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    setup_logging("DEBUG", stream=buffer)
    try:
        yield buffer
    finally:
        setup_logging("INFO")
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
