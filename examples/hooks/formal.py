"""Implements the hook ``fullname`` from people.py, over its default.

Order 10 is above the default's -1, so this implementation is the one called; remove this
plugin (or blacklist it) and the default answers again.
"""

from __future__ import annotations

from opa import Hook


class FormalFullname(Hook):
    """Last name in capitals, a comma, then the first name: "LOVELACE, Ada"."""

    name = "fullname"
    order = 10

    def run(self, first: str, last: str) -> str:
        return f"{last.upper()}, {first}"
