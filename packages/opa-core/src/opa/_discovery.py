"""Plugin discovery: find candidates on the plugin paths, filter them, import them.

A candidate is every top-level module (``name.py``) or package (``name/__init__.py``)
in a plugin folder. Its identity for filtering is ``<folder>/<name>``; its tags come
from ``name-meta.json`` beside a module or ``meta.json`` inside a package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib.machinery import ModuleSpec, PathFinder
from importlib.metadata import packages_distributions
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from opa._errors import PluginError
from opa._log import log

if TYPE_CHECKING:
    from opa._settings_model import Settings


@dataclass(frozen=True)
class Candidate:
    """A module or package found on a plugin path, before it is imported."""

    name: str
    folder: Path
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> str:
        return f"{self.folder}/{self.name}"

    @property
    def tags(self) -> set[str]:
        return {str(tag) for tag in self.meta.get("tags", [])}

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def read_meta(path: Path) -> dict[str, Any]:
    """A plugin's metadata; no file means empty metadata, a bad file is an error."""
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PluginError(f"plugin metadata file {path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise PluginError(f"plugin metadata file {path} must hold a JSON object")
    tags = meta.get("tags", [])
    if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise PluginError(f"plugin metadata file {path}: 'tags' must be a list of strings")
    return meta


def _modules_in(folder: Path) -> Iterable[Candidate]:
    """Every module (``name.py``) and package (``name/__init__.py``) in *folder*."""
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and (entry / "__init__.py").is_file():
            yield Candidate(entry.name, folder, entry / "__init__.py")
        elif entry.is_file() and entry.suffix == ".py":
            yield Candidate(entry.stem, folder, entry)


def _candidates_in(folder: Path) -> Iterable[Candidate]:
    for module in _modules_in(folder):
        if module.name.startswith((".", "_")):
            continue
        if module.is_package:
            meta = read_meta(module.path.with_name("meta.json"))
        else:
            meta = read_meta(folder / f"{module.name}-meta.json")
        yield replace(module, meta=meta)


def discover(paths: Iterable[Path]) -> list[Candidate]:
    """All candidates on *paths*; of two with one name, the first folder's wins."""
    found: dict[str, Candidate] = {}
    for folder in paths:
        if not folder.is_dir():
            warnings.warn(f"plugin path {folder} does not exist; skipping it", stacklevel=2)
            log.warning("plugin path {} does not exist; skipping it", folder)
            continue
        for candidate in _candidates_in(folder):
            found.setdefault(candidate.name, candidate)
    return list(found.values())


@dataclass(frozen=True)
class PluginFilter:
    """The six white/black filters; each passes when unset, and all must pass."""

    whitelist: frozenset[str] = frozenset()
    whitelist_re: re.Pattern[str] | None = None
    whitelist_tags: frozenset[str] = frozenset()
    blacklist: frozenset[str] = frozenset()
    blacklist_re: re.Pattern[str] | None = None
    blacklist_tags: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> PluginFilter:
        """The filters of validated settings (the expressions compiled there already)."""

        def pattern(expression: str) -> re.Pattern[str] | None:
            return re.compile(expression) if expression else None

        return cls(
            whitelist=frozenset(settings.PLUGIN_WHITELIST_LIST),
            whitelist_re=pattern(settings.PLUGIN_WHITELIST_RE),
            whitelist_tags=frozenset(settings.PLUGIN_WHITELIST_TAGS),
            blacklist=frozenset(settings.PLUGIN_BLACKLIST_LIST),
            blacklist_re=pattern(settings.PLUGIN_BLACKLIST_RE),
            blacklist_tags=frozenset(settings.PLUGIN_BLACKLIST_TAGS),
        )

    def accepts(self, identity: str, tags: set[str]) -> bool:
        """Whether a plugin passes every filter. The expressions match from the start of the
        identity (``re.match``), as opa-stack's did: ``.*demo`` matches a name anywhere."""
        if self.whitelist and identity not in self.whitelist:
            return False
        if self.whitelist_re and not self.whitelist_re.match(identity):
            return False
        if self.whitelist_tags and not (self.whitelist_tags & tags):
            return False
        if identity in self.blacklist:
            return False
        if self.blacklist_re and self.blacklist_re.match(identity):
            return False
        return not (self.blacklist_tags & tags)


PLUGIN_MARK = "__opa_plugin__"
"""Set on every module opa imports as a plugin, to tell them from library modules."""


SERVER_OPTIONAL_MODULES = frozenset({"httptools", "uvloop", "websockets", "wsproto", "watchfiles"})
"""Modules uvicorn imports when they are present and does without when not.

Whether installed or not, a plugin of one of these names would be taken for it: uvicorn
would parse HTTP with a plugin's ``httptools.py`` and drop every connection.
"""

_plugin_folders: set[Path] = set()
"""The folders :func:`put_on_sys_path` added, left out when looking for what a name means."""


def _same_file(module: ModuleType, path: Path) -> bool:
    location = getattr(module, "__file__", None)
    return location is not None and Path(location).resolve() == path.resolve()


def _forget(name: str) -> None:
    for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[loaded]


def _spec_outside_plugin_folders(name: str) -> ModuleSpec | None:
    """Where ``import name`` would lead if no plugin folder were on ``sys.path``."""
    path = [
        entry for entry in sys.path if Path(entry or os.getcwd()).resolve() not in _plugin_folders
    ]
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = PathFinder.find_spec(name, path) if finder is PathFinder else find(name, None)
        except (ImportError, ValueError):
            continue
        # A namespace portion (a bare folder of that name) is no module to shadow.
        if spec is not None and spec.origin not in (None, "namespace"):
            return spec
    return None


def shadowed_module(candidate: Candidate) -> str | None:
    """What a plugin of this name would stand in for when imported under it, if anything.

    The standard library, installed distributions (whose import name may differ from their
    own name, as ``yaml`` from PyYAML) and the server's optional modules all count, imported
    yet or not. The same file reached another way (an editable install, the working folder)
    is the plugin itself, not something it shadows.
    """
    name = candidate.name
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return "the standard library"
    spec = _spec_outside_plugin_folders(name)
    if spec is not None and spec.origin is not None:
        if Path(spec.origin).resolve() == candidate.path.resolve():
            return None
        # Looked up only on a clash: reading every distribution's metadata costs about 0.1 s.
        distributions = sorted(set(packages_distributions().get(name, [])))
        if distributions:
            return f"the distribution {', '.join(distributions)}"
        return f"the module at {spec.origin}"
    if name in SERVER_OPTIONAL_MODULES:
        return "an optional module of uvicorn"
    return None


def refuse_shadowing(candidate: Candidate) -> None:
    """Raise a one-line :class:`PluginError` when *candidate* would shadow another module."""
    shadowed = shadowed_module(candidate)
    if shadowed is not None:
        raise PluginError(
            f"plugin {candidate.identity} ({candidate.path}) has the module name "
            f"{candidate.name!r} of {shadowed}, which it would shadow; rename the plugin"
        )


def import_candidate(candidate: Candidate) -> ModuleType:
    """Import a plugin from its own file; a failure names the file and the original error.

    Importing by location, not by name, means a same-named module elsewhere on
    ``sys.path`` (or one left by an earlier app in this process) never stands in. A plugin
    whose name is taken by a module the process may import (see :func:`shadowed_module`)
    is refused, since every later ``import`` of that name would get the plugin.
    """
    existing = sys.modules.get(candidate.name)
    if existing is not None and _same_file(existing, candidate.path):
        return existing
    refuse_shadowing(candidate)
    if existing is not None:
        if not getattr(existing, PLUGIN_MARK, False):
            location = getattr(existing, "__file__", None) or "built in"
            raise PluginError(
                f"plugin {candidate.identity} ({candidate.path}) has the name of the module "
                f"{candidate.name!r} that is already imported ({location}); rename the plugin"
            )
        _forget(candidate.name)  # a same-named plugin of an earlier app in this process
    search = [str(candidate.path.parent)] if candidate.is_package else None
    spec = importlib.util.spec_from_file_location(
        candidate.name, candidate.path, submodule_search_locations=search
    )
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {candidate.identity} ({candidate.path}) cannot be imported")
    module = importlib.util.module_from_spec(spec)
    setattr(module, PLUGIN_MARK, True)
    sys.modules[candidate.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        _forget(candidate.name)
        raise PluginError(
            f"plugin {candidate.identity} ({candidate.path}) failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return module


def _importable_name(name: str) -> bool:
    # A name that is no identifier cannot be imported; dunder files (__init__.py of a folder
    # that is itself a package, __pycache__) are not imported by their name.
    return name.isidentifier() and not name.startswith("__")


def _bare_folders_in(folder: Path) -> Iterable[Candidate]:
    """The subfolders of *folder* without ``__init__.py``, importable as namespace packages."""
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not (entry / "__init__.py").is_file():
            yield Candidate(entry.name, folder, entry)


def put_on_sys_path(paths: Iterable[Path]) -> None:
    """Plugin folders go on ``sys.path`` so plugins can import each other.

    Every module in them then answers an ``import`` of its name, whether it passes the
    plugin filters or not: a black-listed ``uvloop.py`` would still be what uvicorn imports
    when uvloop is not installed, and so would a bare ``uvloop/`` folder, as a namespace
    package. So each is checked first, as a plugin is (see :func:`shadowed_module`), and no
    folder goes on ``sys.path`` unless all pass.
    """
    folders = [folder for folder in paths if folder.is_dir()]
    for folder in folders:
        for module in _modules_in(folder):
            if _importable_name(module.name):
                refuse_shadowing(module)
        for portion in _bare_folders_in(folder):
            # A namespace package is what an import finds only when no module has the name.
            if (
                _importable_name(portion.name)
                and _spec_outside_plugin_folders(portion.name) is None
            ):
                refuse_shadowing(portion)
    for folder in folders:
        _plugin_folders.add(folder.resolve())
        entry = str(folder)
        if entry not in sys.path:
            sys.path.append(entry)
