"""Deprecated: opa-stack's ``opa.utils``.

``unique`` is kept, with a warning; ``host_exists`` is gone, since ``LOAD: auto`` checks each
component's hosts itself (they must accept TCP, not only resolve).
"""

from collections.abc import Hashable, Iterable
from typing import TypeVar

from opa._legacy import alias_module_getattr

_T = TypeVar("_T", bound=Hashable)


def _unique(items: Iterable[_T]) -> list[_T]:
    """*items* without repeats, in their first order."""
    return list(dict.fromkeys(items))


__getattr__ = alias_module_getattr(
    __name__,
    moved={"unique": _unique},
    instead={"unique": "list(dict.fromkeys(items))"},
    gone={
        "host_exists": (
            "a component under LOAD: auto is connected only when its hosts accept TCP; "
            "ask opa.get_instance(name, None) whether it is there"
        ),
    },
)
