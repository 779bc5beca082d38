"""User hooks: named hooks that plugins define and implement, called by name.

A :class:`HookDefinition` declares a hook; :class:`Hook` subclasses implement it.
Of several implementations, the one with the highest ``order`` is used, so a
plugin overrides a default (usually ``order = -1``) by declaring a higher one.
Only that winner ever runs, so a call goes straight to it rather than through pluggy,
which carries opa's extension points instead (see ``docs/concepts.md`` for the measured
reason).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from opa._errors import HookError


class _Named:
    """A hook class's ``name`` defaults to its class name, as opa-stack had it."""

    name: ClassVar[str] = ""

    @classmethod
    def hook_name(cls) -> str:
        return cls.name or cls.__name__


class HookDefinition(_Named):
    """Declares a hook. ``name`` defaults to the class name.

    ``required``: start-up fails when no plugin implements it.
    ``is_async``: implementations must be coroutines, called with ``call_hook_async``.
    """

    required: ClassVar[bool] = False
    is_async: ClassVar[bool] = False


class Hook(_Named):
    """Implements the hook called ``name`` (default: the class name, so a class named as
    its definition implements it); ``run`` receives the caller's arguments."""

    order: ClassVar[int] = 0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__qualname__} must define run()")


def _describe(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class HookRegistry:
    """Collects definitions and implementations, checks them, and calls the winners."""

    def __init__(self) -> None:
        self.definitions: dict[str, type[HookDefinition]] = {}
        self.implementations: dict[str, list[type[Hook]]] = {}
        self._sync_runs: dict[str, Callable[..., Any]] = {}
        self._async_runs: dict[str, Callable[..., Any]] = {}
        self._winners: dict[str, Hook] = {}

    def __getitem__(self, name: str) -> Hook:
        """The winning implementation of *name*, the object ``call_hook`` runs, as opa-stack's
        ``plugin_manager.hooks[name]`` gave it."""
        winner = self._winners.get(name)
        if winner is None:
            raise self._lookup_error(name, want_async=self._is_async(name))
        return winner

    def _is_async(self, name: str) -> bool:
        definition = self.definitions.get(name)
        return definition is not None and definition.is_async

    def add_definition(self, definition: type[HookDefinition]) -> None:
        name = definition.hook_name()
        existing = self.definitions.get(name)
        if existing is not None and existing is not definition:
            raise HookError(
                f"hook definition {name!r} is defined twice: in {_describe(existing)} "
                f"and in {_describe(definition)}"
            )
        self.definitions[name] = definition

    def add_hook(self, hook: type[Hook]) -> None:
        bucket = self.implementations.setdefault(hook.hook_name(), [])
        if hook not in bucket:
            bucket.append(hook)

    def finalize(self) -> None:
        """Check everything fits, then pick the one implementation each hook calls."""
        for name, hooks in self.implementations.items():
            definition = self.definitions.get(name)
            if definition is None:
                culprits = ", ".join(_describe(h) for h in hooks)
                raise HookError(f"hook {culprits} implements {name!r}, which no plugin defines")
            for hook in hooks:
                hook_is_async = inspect.iscoroutinefunction(hook.run)
                if hook_is_async != definition.is_async:
                    want, got = _kind(definition.is_async), _kind(hook_is_async)
                    raise HookError(
                        f"hook {_describe(hook)} is {got} but definition {name!r} "
                        f"({_describe(definition)}) is {want}"
                    )
        missing = sorted(
            name
            for name, definition in self.definitions.items()
            if definition.required and not self.implementations.get(name)
        )
        if missing:
            raise HookError(f"required hooks have no implementation: {', '.join(missing)}")
        for name, definition in self.definitions.items():
            self._register(name, definition)

    def _register(self, name: str, definition: type[HookDefinition]) -> None:
        winner = self.winner(name)
        if winner is None:
            return
        # Only the winner ever runs, so calls go straight to it: through pluggy each call
        # would cost several times as much (benchmarks/bench_hooks.py, docs/concepts.md).
        runs = self._async_runs if definition.is_async else self._sync_runs
        self._winners[name] = instance = winner()
        runs[name] = instance.run

    def winner(self, name: str) -> type[Hook] | None:
        """The implementation ``call_hook`` uses for *name*, if any."""
        hooks = self.implementations.get(name) or []
        # max() keeps the first of equal orders; reversed() makes the last loaded win ties.
        return max(reversed(hooks), key=lambda h: h.order) if hooks else None

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        run = self._sync_runs.get(name)
        if run is None:
            raise self._lookup_error(name, want_async=False)
        return run(*args, **kwargs)

    async def call_async(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        run = self._async_runs.get(name)
        if run is None:
            raise self._lookup_error(name, want_async=True)
        return await run(*args, **kwargs)

    def _lookup_error(self, name: str, want_async: bool) -> HookError:
        definition = self.definitions.get(name)
        if definition is None:
            known = ", ".join(sorted(self.definitions)) or "none"
            return HookError(f"no hook definition named {name!r} (defined: {known})")
        if definition.is_async != want_async:
            right = "call_hook_async" if definition.is_async else "call_hook"
            return HookError(f"hook {name!r} is {_kind(definition.is_async)}; call it with {right}")
        return HookError(f"hook {name!r} is defined but no plugin implements it")


def _kind(is_async: bool) -> str:
    return "async" if is_async else "sync"
