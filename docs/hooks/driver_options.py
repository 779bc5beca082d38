"""The driver options reference, rendered from the drivers' option models.

In docs/driver-options.md, each table of a pydantic model's fields (name, type, default,
constraints and the field's description: its ``Field(description=...)`` or the docstring
written under it) sits between ``<!-- options: package.module:ModelName -->`` and
``<!-- /options -->``. The tables are committed, so the page reads the same on GitHub as
on the site. ``python docs/hooks/driver_options.py`` rewrites them from the installed
code; as an mkdocs hook this module fails the build when they are out of date, and
tests/integration/test_docs_pages.py fails the same way.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import re
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

PAGE = Path(__file__).resolve().parents[1] / "driver-options.md"
SECTION = re.compile(
    r"^(?P<start><!-- options: (?P<module>[\w.]+):(?P<model>\w+) -->\n)"
    r"(?P<table>.*?)"
    r"^(?P<end><!-- /options -->)$",
    re.MULTILINE | re.DOTALL,
)
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
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias):
        return annotation.__name__
    text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    return text.replace(" | ", " or ")  # a union nested in a generic: no pipe in a table


def type_cell(annotation: Any) -> str:
    """The type as table-cell markdown. A union is one code span per member joined by an
    escaped pipe outside the spans: GitHub and Python-Markdown both show `str | None`
    then, whereas an escaped pipe inside a code span shows its backslash on the site."""
    members = [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = list(typing.get_args(annotation))
    return " \\| ".join(f"`{type_name(member)}`" for member in members)


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
            cell(f"`{name}`"),
            type_cell(field.annotation),
            cell(default_of(field)),
            cell(constraints_of(field)),
            cell(rst_to_markdown(description) or "-"),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def regenerate(markdown: str) -> str:
    """*markdown* with every options section holding its model's table as the code has it
    now; an unknown model raises."""

    def replace(match: re.Match[str]) -> str:
        table = render(load_model(match["module"], match["model"]))
        return f"{match['start']}\n{table}\n\n{match['end']}"

    return SECTION.sub(replace, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Fail the build when a committed options table differs from what the code says."""
    if regenerate(markdown) != markdown:
        raise ValueError(
            f"{PAGE.name}: an options table is out of date; "
            "run `python docs/hooks/driver_options.py` and commit the page"
        )
    return markdown


if __name__ == "__main__":
    PAGE.write_text(regenerate(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
