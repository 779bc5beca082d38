"""mkdocs hook: the test marks of the python samples read as comments for people on the site.

packages/opa-core/tests/test_docs_samples.py runs each python block of docs/*.md by the
mark on its first lines (its docstring lists them). Readers need the file name, the
answers and the settings, in words, and nothing of the harness:

- ``# plugin: NAME.py`` becomes ``# plugins/NAME.py``, the file to write;
- ``# expect: GET /path -> 200 BODY`` becomes ``# GET /path answers 200 BODY``;
- ``# settings: {...}`` becomes ``# with the settings {...}``;
- ``# needs: X`` becomes ``# needs X``;
- ``# run`` is dropped.
"""

from __future__ import annotations

import re
from typing import Any

BLOCK = re.compile(r"^(?P<fence>```python\n)(?P<body>.*?)^(?P<close>```)", re.M | re.S)
EXPECT = re.compile(r"^# expect: (?P<request>[A-Z]+ \S+) -> (?P<answer>.+)$")
RENAMES = (("# plugin: ", "# plugins/"), ("# settings: ", "# with the settings "))


def for_readers(line: str) -> str | None:
    """The line as the site shows it; None drops it."""
    if line.strip() == "# run":
        return None
    if match := EXPECT.match(line):
        return f"# {match['request']} answers {match['answer']}"
    if line.startswith("# needs: "):
        return "# needs " + line.removeprefix("# needs: ")
    for mark, words in RENAMES:
        if line.startswith(mark):
            return words + line.removeprefix(mark)
    return line


def rewrite_block(body: str) -> str:
    """A python block's text with its leading comment lines (where marks live) rewritten."""
    lines = body.splitlines(keepends=True)
    out: list[str] = []
    for index, line in enumerate(lines):
        if not line.startswith("#"):
            out += lines[index:]
            break
        shown = for_readers(line.rstrip("\n"))
        if shown is not None:
            out.append(shown + "\n")
    return "".join(out)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Rewrite the marks of every python block of a page."""

    def replace(match: re.Match[str]) -> str:
        return match["fence"] + rewrite_block(match["body"]) + match["close"]

    return BLOCK.sub(replace, markdown)
