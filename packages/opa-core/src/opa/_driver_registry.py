"""Finds drivers: those defined in plugins, then the ``opa.drivers`` entry points.

Only the entry points of drivers that configuration names are loaded, so an
installed-but-unused driver never imports anything.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from opa._drivers import ENTRY_POINT_GROUP, Driver, check_driver_class, driver_is_async
from opa._errors import DriverError
from opa._known_drivers import DRIVERS, LEGACY_NAMES, install_hint


def missing_driver_fix(driver_name: str, installed: Iterable[str]) -> str:
    """What to do about a ``DRIVER`` no installed distribution provides.

    A driver opa publishes: the line that installs it. A name close to an installed driver
    (or to one opa publishes): "did you mean", since a typo is the likelier mistake.
    Otherwise the installed names, so the user sees what there is.
    """
    if driver_name.lower() in DRIVERS:
        return install_hint(driver_name)
    names = sorted(set(installed))
    close = difflib.get_close_matches(driver_name.lower(), names, n=3, cutoff=0.6)
    if close:
        return f"did you mean {' or '.join(repr(name) for name in close)}?"
    hint = install_hint(driver_name)
    if hint:
        return hint
    listed = ", ".join(names) if names else "none"
    return f"installed drivers: {listed} (`opa drivers` lists them with their distributions)"


@dataclass(frozen=True)
class InstalledDriver:
    """An ``opa.drivers`` entry point, described without importing it."""

    name: str
    distribution: str
    version: str
    entry_point: EntryPoint


def _distribution_of(entry_point: EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:
        return "unknown", "unknown"
    return dist.name, dist.version


class DriverRegistry:
    """One registry for plugin-defined and installed drivers, keyed by lower-cased name."""

    def __init__(self, installed: Iterable[EntryPoint] | None = None) -> None:
        found = entry_points(group=ENTRY_POINT_GROUP) if installed is None else installed
        self.installed: dict[str, InstalledDriver] = {}
        for entry_point in found:
            name = entry_point.name.lower()
            distribution, version = _distribution_of(entry_point)
            other = self.installed.get(name)
            if other is not None and other.distribution != distribution:
                raise DriverError(
                    f"driver name {name!r} is provided by two distributions: "
                    f"{other.distribution} and {distribution}; uninstall one"
                )
            self.installed[name] = InstalledDriver(name, distribution, version, entry_point)
        self._plugin_drivers: dict[str, type[Driver]] = {}
        self._loaded: dict[str, type[Driver]] = {}

    def add_plugin_driver(self, cls: type[Driver], plugin: str) -> None:
        """Register a driver class found in *plugin*; the same class twice is fine."""
        check_driver_class(cls, f"plugin {plugin}")
        name = cls.name.lower()
        existing = self._plugin_drivers.get(name)
        if existing is not None and existing is not cls:
            raise DriverError(
                f"two driver classes are named {name!r}: {existing.__module__}."
                f"{existing.__qualname__} and {cls.__module__}.{cls.__qualname__} (in {plugin})"
            )
        if name in self.installed:
            raise DriverError(
                f"driver {name!r} in plugin {plugin} ({cls.__module__}.{cls.__qualname__}) "
                f"clashes with the installed distribution {self.installed[name].distribution}; "
                "rename one of them"
            )
        self._plugin_drivers[name] = cls

    def __getitem__(self, name: str) -> type[Driver]:
        """The driver class called *name*, as opa-stack's ``plugin_manager.drivers[name]``."""
        cls = self.get(name)
        if cls is None:
            raise KeyError(
                f"no driver named {name!r} (drivers: {', '.join(self.names()) or 'none'})"
            )
        return cls

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.names()

    def get(self, name: str) -> type[Driver] | None:
        """The driver class called *name*, loading its entry point on first use."""
        key = name.lower()
        cls = self._plugin_drivers.get(key) or self._loaded.get(key)
        if cls is not None:
            return cls
        installed = self.installed.get(key)
        if installed is None:
            return None
        cls = self._load(installed)
        self._loaded[key] = cls
        return cls

    def _load(self, installed: InstalledDriver) -> type[Driver]:
        source = f"distribution {installed.distribution} {installed.version}"
        try:
            loaded = installed.entry_point.load()
        except Exception as exc:
            fix = ""
            if isinstance(exc, ImportError):
                fix = (
                    f"; a module it needs is missing: reinstall it with its dependencies "
                    f"(pip install --force-reinstall {installed.distribution})"
                )
            raise DriverError(
                f"driver {installed.name!r} from {source} failed to load "
                f"({installed.entry_point.value}): {type(exc).__name__}: {exc}{fix}"
            ) from exc
        if not (isinstance(loaded, type) and issubclass(loaded, Driver)):
            raise DriverError(
                f"entry point {installed.name!r} of {source} points at "
                f"{installed.entry_point.value}, which is not an opa.Driver subclass"
            )
        check_driver_class(loaded, source)
        if loaded.contract_version is None:
            raise DriverError(
                f"driver {installed.name!r} from {source} declares no contract_version; "
                "drivers shipped as distributions must set contract_version"
            )
        if loaded.name.lower() != installed.name:
            raise DriverError(
                f"entry point {installed.name!r} of {source} loads a driver named "
                f"{loaded.name!r}; the entry point name and Driver.name must match"
            )
        return loaded

    def names(self) -> list[str]:
        """Every driver name configuration may use: installed ones and plugins' own."""
        return sorted({*self.installed, *self._plugin_drivers})

    def legacy_object(self, path: str) -> tuple[type[Driver], str, Any] | None:
        """What an installed driver declares for *path*, an opa-stack import path: (the
        driver class, the import to write now, the object), or None when none declares it.

        A path in a driver's ``legacy_names`` is the driver class itself; one in its
        ``legacy_exports`` is imported from where it lives now. The driver opa's generated
        list names for *path* is tried first, so the usual case loads one entry point; the
        other installed drivers are loaded only when it is absent.
        """
        known = LEGACY_NAMES.get(path)
        ordered = sorted(self.installed, key=lambda name: name != known)
        for name in ordered:
            cls = self.get(name)
            if cls is None:
                continue
            if path in cls.legacy_names:
                return cls, f"from {cls.__module__} import {cls.__qualname__}", cls
            target = cls.legacy_exports.get(path)
            if target is not None:
                module, _, attribute = target.partition(":")
                found = getattr(importlib.import_module(module), attribute)
                return cls, f"from {module} import {attribute}", found
        return None

    def describe(self, name: str) -> tuple[bool, str]:
        """(is_async, source) of a driver, loading it if needed; for ``opa drivers``."""
        cls = self.get(name)
        if cls is None:
            raise DriverError(f"no driver named {name!r} is installed")
        installed = self.installed.get(name.lower())
        source = installed.distribution if installed else "plugin"
        return driver_is_async(cls), source
