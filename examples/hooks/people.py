"""Declares the hook ``fullname``, a default for it, and a route that calls it.

The hook is required: start-up fails when no plugin implements it. The default here
sits at order -1, so any other plugin's implementation (order 0 or more) wins.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from opa import Hook, HookDefinition, call_hook, get_router

router = get_router()

Name = Annotated[str, Path(min_length=1, max_length=50)]


class FullnameDefinition(HookDefinition):
    """fullname(first, last) -> str: how a person's name is written."""

    name = "fullname"
    required = True


class PlainFullname(Hook):
    """The fallback: first name, a space, last name."""

    name = "fullname"
    order = -1

    def run(self, first: str, last: str) -> str:
        return f"{first} {last}"


@router.get("/get-fullname/{first}/{last}")
def get_fullname(first: Name, last: Name) -> dict[str, str]:
    """The name as the winning implementation of ``fullname`` writes it."""
    return {"fullname": call_hook("fullname", first, last)}
