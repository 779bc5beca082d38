"""mkdocs hook: render the drivers' option models into the driver options reference.

A page line of the form ``<!-- options: package.module:ModelName -->`` is replaced, at
build time, by a table of that pydantic model's fields: name, type, default, constraints
and the field's description (its ``Field(description=...)`` or the docstring written
under it). The tables therefore always say what the installed code accepts.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import re
import textwrap
import types
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

MARKER = re.compile(r"^<!-- options: (?P<module>[\w.]+):(?P<model>\w+) -->$", re.MULTILINE)
CONSTRAINTS = (
    ("gt", "> {}"),
    ("ge", ">= {}"),
    ("lt", "< {}"),
    ("le", "<= {}"),
    ("min_length", "length >= {}"),
    ("max_length", "length <= {}"),
    ("pattern", "matches `{}`"),
)


def load_model(module: str, name: str) -> type[BaseModel]:
    model = getattr(importlib.import_module(module), name)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{module}:{name} is not a pydantic model")
    return model


def attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The string literal written right under each annotated attribute of the class."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(model)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    found: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            found[node.target.id] = " ".join(following.value.value.split())
    return found


def rst_to_markdown(text: str) -> str:
    return text.replace("``", "`")


def type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def default_of(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"  # type: ignore[call-arg]
    return f"`{field.default!r}`"


def constraints_of(field: FieldInfo) -> str:
    found = []
    for item in field.metadata:
        for attribute, form in CONSTRAINTS:
            value = getattr(item, attribute, None)
            if value is not None:
                found.append(form.format(value))
    return ", ".join(found) or "-"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(model: type[BaseModel]) -> str:
    """A markdown section for *model*: its docstring, then one table row per field."""
    notes = attribute_docstrings(model)
    extra = model.model_config.get("extra")
    lines = [
        f"`{model.__module__}.{model.__qualname__}`"
        + (" (unknown options are refused)" if extra == "forbid" else ""),
        "",
    ]
    if model.__doc__:
        lines += [rst_to_markdown(inspect.cleandoc(model.__doc__)), ""]
    lines += [
        "| option | type | default | constraints | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in model.model_fields.items():
        description = field.description or notes.get(name, "")
        row = [
            f"`{name}`",
            f"`{type_name(field.annotation)}`",
            default_of(field),
            constraints_of(field),
            rst_to_markdown(description) or "-",
        ]
        lines.append("| " + " | ".join(cell(part) for part in row) + " |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace each options marker by the rendered model; an unknown model fails the build."""

    def replace(match: re.Match[str]) -> str:
        return render(load_model(match["module"], match["model"]))

    return MARKER.sub(replace, markdown)
