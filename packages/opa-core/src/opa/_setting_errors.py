"""One-line messages for a bad setting, shared by the top-level model and the components.

Each names the setting (a dotted path), the ``OPA_`` variable that sets it, what was
expected and the type that was found. A short value is shown beside its type only when
the caller allows it and no part of the path is secret-named; URL passwords are masked
before the value is cut, so a cut never leaves part of one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from opa._errors import ConfigError
from opa._masking import is_secret_key, mask_secrets

SHOWN_VALUE_LENGTH = 40
SHOWN_KEY_LENGTH = 60
MAX_MASKED_LENGTH = 200
MAX_PROBLEMS = 3
MISSING: Any = object()
"""Stands for a setting that is not there at all."""


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 3] + "..."


def _key(part: Any) -> str:
    """A key as the message shows it: printable, and short whatever the user wrote."""
    text = str(part)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return _cut(text, SHOWN_KEY_LENGTH)


def env_var(path: Sequence[Any]) -> str:
    """The environment variable of a setting: ``OPA_`` and the path joined by ``__``."""
    return "OPA_" + "__".join(_key(part).upper() for part in path)


def kind(value: Any) -> str:
    """The plain Python name of *value*'s type; dynaconf's containers (DataList, Box) are
    subclasses of list and dict, and their names mean nothing to the user."""
    for plain in (bool, int, float, str, bytes, list, tuple, Mapping):
        if isinstance(value, plain):
            return "mapping" if plain is Mapping else plain.__name__
    return "null" if value is None else type(value).__name__


def found(path: Sequence[Any], value: Any, show_value: bool = True) -> str:
    """What was found: the type, and a short masked value when that is safe to show."""
    if value is MISSING:
        return "nothing"
    name = kind(value)
    secret = any(is_secret_key(str(part)) for part in path)
    if not show_value or secret or not isinstance(value, bool | int | float | str):
        return name
    if isinstance(value, str) and len(value) > MAX_MASKED_LENGTH:
        # Masking it whole costs time, and masking only a part could show half a password.
        return f"{name} of {len(value)} characters"
    try:
        shown = repr(mask_secrets(value) if isinstance(value, str) else value)
    except ValueError:  # an integer past Python's limit on digits to print
        return name
    return f"{name} {_cut(shown, SHOWN_VALUE_LENGTH)}"


def problem(
    path: Sequence[Any],
    expected: str,
    what_was_found: str,
    item: int | None = None,
    *,
    wrong: str = "",
) -> str:
    """``setting A.B (OPA_A__B): expected ...; found ...``; *item* names an item of a list.

    With *wrong* (a driver's own check saying what is wrong, "names no host"), that is
    said instead of what was expected.
    """
    name = ".".join(_key(part) for part in path) + ("" if item is None else f"[{item}]")
    said = wrong or f"expected {expected}"
    return f"setting {name} ({env_var(path)}): {said}; found {what_was_found}"


def bad_setting(
    path: Sequence[Any], expected: str, value: Any, show_value: bool = True
) -> ConfigError:
    """The error for one bad setting at *path*."""
    return ConfigError(problem(path, expected, found(path, value, show_value)))


def one_line(problems: Sequence[str]) -> str:
    """Several problems in one line: the first few, and how many more there are."""
    unique = list(dict.fromkeys(problems))
    line = "; ".join(unique[:MAX_PROBLEMS])
    if len(unique) > MAX_PROBLEMS:
        line += f"; and {len(unique) - MAX_PROBLEMS} more"
    return line


def pydantic_expected(error: Mapping[str, Any]) -> str:
    """What a pydantic error says was expected, in the words of this module."""
    if error["type"] == "missing":
        return "a value (it is required)"
    if error["type"] == "extra_forbidden":
        return "no such key"
    message = str(error["msg"])
    for prefix in ("Input should be ", "Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith(("greater than", "less than", "at least", "at most")):
        message = f"a value {message}"
    return message


def validation_problems(
    exc: ValidationError, prefix: Sequence[Any], show_value: bool = True
) -> list[str]:
    """Each error of a pydantic model validated at *prefix*, as a :func:`problem` line."""
    problems = []
    for error in exc.errors(include_url=False):
        path = [*prefix, *error["loc"]]
        value = MISSING if error["type"] == "missing" else error.get("input")
        what = found(path, value, show_value)
        if error["type"] == "value_error":  # a validator's own sentence of what is wrong
            problems.append(problem(path, "", what, wrong=pydantic_expected(error)))
        else:
            problems.append(problem(path, pydantic_expected(error), what))
    return problems
