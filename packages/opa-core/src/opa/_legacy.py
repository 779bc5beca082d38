"""opa-stack's names that opa keeps as deprecated aliases, or refuses naming what replaces them.

Every message ends by pointing at the migration page, where the same name has its row.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from opa._errors import RemovedNameError

MIGRATION_PAGE = "'Migrating from opa-stack' (docs/migrating.md)"
"""Where each old name and setting has its row; every message here names it."""

GET_UTIL = (
    "a plugin's module is imported by its own name, since plugin folders are on sys.path "
    "(from demo_util import double)"
)
"""What replaces opa-stack's ``get_util``, in ``opa`` and ``opa.core.plugin`` alike."""


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that *old* (an opa-stack name) still works but is deprecated in favour of *new*."""
    warnings.warn(
        f"{old} is deprecated; use {new} (see {MIGRATION_PAGE})",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def removed(old: str, replacement: str) -> RemovedNameError:
    """The error for an opa-stack name opa does not provide; *replacement* says what to do."""
    return RemovedNameError(f"{old} is not in opa: {replacement} (see {MIGRATION_PAGE})")


def missing_attribute(
    owner: object, name: str, gone: Mapping[str, str], old: str
) -> AttributeError:
    """The error for *owner* lacking *name*: Python's usual one, or, for a name in *gone*
    (one of opa-stack's attributes), one calling it *old* and saying what replaces it."""
    replacement = gone.get(name)
    if replacement is None:
        return AttributeError(f"{type(owner).__name__!r} object has no attribute {name!r}")
    return AttributeError(f"{old} was opa-stack's; {replacement} (see {MIGRATION_PAGE})")


def alias_module_getattr(
    module: str,
    moved: Mapping[str, Any],
    gone: Mapping[str, str],
    instead: Mapping[str, str] | None = None,
) -> Any:
    """A module ``__getattr__`` for an opa-stack module.

    Each name in *moved* is returned with a warning naming what to write instead: its
    entry in *instead*, else ``from opa import <name>``. Each name in *gone* raises its
    replacement's description.
    """

    def __getattr__(name: str) -> Any:
        old = f"{module}.{name}"
        if name in moved:
            new = (instead or {}).get(name) or f"'from opa import {name}'"
            warn_renamed(old, new)
            return moved[name]
        if name in gone:
            raise removed(old, gone[name])
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
