"""docs/driver-options.md holds its tables as the drivers' option models say, readable on
GitHub (no placeholders) and with unions that render as `str | None` everywhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def options_hook() -> ModuleType:
    """docs/hooks/driver_options.py, which is no package, loaded from its file."""
    path = ROOT / "docs" / "hooks" / "driver_options.py"
    spec = importlib.util.spec_from_file_location("driver_options_hook", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_options_tables_match_the_option_models() -> None:
    """Each table of driver-options.md is what its model renders today; rerun the hook
    script when this fails."""
    hook = options_hook()
    page = hook.PAGE.read_text(encoding="utf-8")
    assert page == hook.regenerate(page), (
        "docs/driver-options.md is stale: run `python docs/hooks/driver_options.py`"
    )


def test_every_options_section_holds_a_table() -> None:
    """Each first-party options model has its table in the page itself, between its markers."""
    hook = options_hook()
    sections = list(hook.SECTION.finditer(hook.PAGE.read_text(encoding="utf-8")))
    models = {"RedisOptions", "MongoOptions", "CeleryOptions", "SQLOptions"}
    assert {s["model"] for s in sections} == models
    for section in sections:
        assert "| option | type | default | constraints | description |" in section["table"]
        assert "| `URL` |" in section["table"] or "| `BROKER_URL` |" in section["table"]


def test_the_build_hook_refuses_a_stale_table() -> None:
    """A page whose table differs from the model fails the site build, naming the fix."""
    hook = options_hook()
    page = hook.PAGE.read_text(encoding="utf-8")
    stale = page.replace("| `URL` | `str` |", "| `URL` | `int` |", 1)
    assert stale != page
    with pytest.raises(ValueError, match=r"driver_options\.py"):
        hook.on_page_markdown(stale)
    assert hook.on_page_markdown(page) == page


@pytest.mark.parametrize(
    ("annotation", "cell"),
    [
        (str | None, r"`str` \| `None`"),
        (bool | None, r"`bool` \| `None`"),
        (int, "`int`"),
        (dict[str, int | None], "`dict[str, int or None]`"),
    ],
)
def test_union_types_keep_their_pipe_outside_code_spans(annotation: object, cell: str) -> None:
    """A union is one code span per member with the escaped pipe between them, which GitHub
    and Python-Markdown both show as `|`; no code span holds a backslash-pipe."""
    assert options_hook().type_cell(annotation) == cell


def test_no_code_span_in_the_page_escapes_a_pipe() -> None:
    """`str \\| None` inside backticks shows its backslash on the site: none is left."""
    text = (ROOT / "docs" / "driver-options.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        spans = line.split("`")[1::2]  # inside backticks: every other piece
        assert not [span for span in spans if "\\|" in span], line
