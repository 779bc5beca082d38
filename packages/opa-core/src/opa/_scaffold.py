"""``opa new-driver``: lay out a driver package that installs, registers and passes its suite.

The files come from ``opa/templates/driver`` (shipped in the wheel as data with a ``.tmpl``
suffix). Each template holds ``{{placeholder}}`` markers that :func:`render` fills in; the
generated driver talks to a line-echo server over TCP, and its tests start one, so a freshly
generated package passes :class:`opa.testing.DriverComplianceSuite` before its author has
written a line. The author then swaps the echo protocol for a real client library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from opa._errors import OpaError

NAME_PATTERN = re.compile(r"[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*")
"""A driver name: lowercase letters, digits and single dashes, starting with a letter."""

TEMPLATE_SUFFIX = ".tmpl"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class ScaffoldError(OpaError):
    """A driver package cannot be generated with the name or folder given."""


@dataclass(frozen=True)
class DriverNames:
    """Every spelling of one driver's name the generated package needs."""

    name: str
    is_async: bool

    @property
    def distribution(self) -> str:
        return f"opa-driver-{self.name}"

    @property
    def package(self) -> str:
        return f"opa_driver_{self.name.replace('-', '_')}"

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-")) + "Driver"

    @property
    def url_variable(self) -> str:
        return f"OPA_TEST_{self.name.replace('-', '_').upper()}_URL"

    def values(self) -> dict[str, str]:
        """What each ``{{placeholder}}`` of the templates becomes."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "package": self.package,
            "class_name": self.class_name,
            "options_class": self.class_name.removesuffix("Driver") + "Options",
            "url_variable": self.url_variable,
            "component": self.name.replace("-", "_"),
            "component_upper": self.name.replace("-", "_").upper(),
            "flavour": "async" if self.is_async else "sync",
        }


def check_name(name: str) -> str:
    """Return *name* if it can name a driver, else raise a :class:`ScaffoldError` saying why."""
    if not NAME_PATTERN.fullmatch(name):
        raise ScaffoldError(
            f"invalid driver name {name!r}: use lowercase letters, digits and single dashes, "
            "starting with a letter and ending with a letter or digit (for example 'my-db')"
        )
    return name


def template_root() -> Traversable:
    """The folder of the driver package's templates inside the installed opa."""
    return files("opa").joinpath("templates", "driver")


def render(text: str, values: dict[str, str]) -> str:
    """Fill every ``{{placeholder}}`` of *text*; an unknown one is a bug in the templates."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ScaffoldError(f"driver template uses unknown placeholder {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(fill, text)


def _templates(folder: Traversable, relative: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Relative paths of every template below *folder*, in a stable order."""
    found: list[tuple[str, ...]] = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.is_dir():
            found.extend(_templates(entry, (*relative, entry.name)))
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            found.append((*relative, entry.name))
    return found


def _output_path(relative: tuple[str, ...], names: DriverNames) -> tuple[str, ...] | None:
    """Where a template lands in the package, or None when it is for the other flavour.

    ``__package__`` in a folder name becomes the import name; a ``.sync``/``.async`` marker
    before the suffix picks the file for one flavour only.
    """
    *folders, filename = relative
    stem = filename.removesuffix(TEMPLATE_SUFFIX)
    for flavour, wanted in ((".sync", False), (".async", True)):
        base, dot, ext = stem.rpartition(".")
        if dot and base.endswith(flavour):
            if wanted != names.is_async:
                return None
            stem = f"{base.removesuffix(flavour)}.{ext}"
    return (*(names.package if part == "__package__" else part for part in folders), stem)


def create_driver_package(name: str, directory: Path, *, is_async: bool = False) -> Path:
    """Write the package ``opa-driver-NAME`` into *directory* and return its folder.

    Refuses an invalid name and an existing folder; nothing is written in either case.
    """
    names = DriverNames(check_name(name), is_async)
    target = Path(directory) / names.distribution
    if target.exists():
        raise ScaffoldError(f"{target} already exists; remove it or choose another --dir")
    root = template_root()
    values = names.values()
    rendered: dict[Path, str] = {}
    for relative in _templates(root):
        output = _output_path(relative, names)
        if output is not None:
            text = root.joinpath(*relative).read_text(encoding="utf-8")
            rendered[target.joinpath(*output)] = render(text, values)
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
