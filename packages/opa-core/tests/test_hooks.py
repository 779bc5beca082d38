"""Hooks on pluggy: definitions, implementations, order, and the errors."""

from __future__ import annotations

import asyncio

import pytest

from opa._errors import HookError
from opa._hooks import Hook, HookDefinition, HookRegistry


class Fullname(HookDefinition):
    required = True


class DefaultFullname(Hook):
    name = "Fullname"
    order = -1

    def run(self, first: str, last: str) -> str:
        return f"{first} {last}"


class LoudFullname(Hook):
    name = "Fullname"
    order = 5

    def run(self, first: str, last: str, sep: str = " ") -> str:
        return f"{first}{sep}{last}".upper()


class Later(HookDefinition):
    name = "later"
    is_async = True


class AsyncLater(Hook):
    name = "later"

    async def run(self, value: int) -> int:
        await asyncio.sleep(0)
        return value * 2


def registry(*classes: type) -> HookRegistry:
    hooks = HookRegistry()
    for cls in classes:
        if issubclass(cls, HookDefinition):
            hooks.add_definition(cls)
        else:
            hooks.add_hook(cls)
    hooks.finalize()
    return hooks


def test_name_defaults_to_the_class_name() -> None:
    """A definition without `name` is called by its class name."""
    assert Fullname.hook_name() == "Fullname"


def test_the_highest_order_wins() -> None:
    """Of several implementations, only the highest order one runs."""
    hooks = registry(Fullname, DefaultFullname, LoudFullname)
    assert hooks.call("Fullname", ("ada", "lovelace"), {}) == "ADA LOVELACE"
    assert hooks.winner("Fullname") is LoudFullname


def test_the_default_runs_when_nothing_overrides_it() -> None:
    """The order -1 default is used when it is the only implementation."""
    hooks = registry(Fullname, DefaultFullname)
    assert hooks.call("Fullname", ("ada",), {"last": "lovelace"}) == "ada lovelace"


def test_positional_keyword_and_default_arguments_pass_through() -> None:
    """call passes positional and keyword arguments to run unchanged, defaults included."""
    hooks = registry(Fullname, LoudFullname)
    assert hooks.call("Fullname", ("a", "b"), {"sep": "-"}) == "A-B"


def test_a_winner_returning_none_does_not_fall_through() -> None:
    """A winning hook that returns None is still the answer; lower orders do not run."""

    class Quiet(Hook):
        name = "Fullname"
        order = 9

        def run(self, first: str, last: str) -> None:
            return None

    hooks = registry(Fullname, DefaultFullname, Quiet)
    assert hooks.call("Fullname", ("a", "b"), {}) is None


def test_async_hooks_are_awaited() -> None:
    """call_async awaits the winning coroutine implementation."""
    hooks = registry(Later, AsyncLater)
    assert asyncio.run(hooks.call_async("later", (21,), {})) == 42


def test_a_duplicate_definition_is_an_error() -> None:
    """Two definitions with one name are refused, naming both classes."""

    class Fullname(HookDefinition):  # same name, another class
        pass

    hooks = HookRegistry()
    hooks.add_definition(globals()["Fullname"])
    with pytest.raises(HookError, match="defined twice") as caught:
        hooks.add_definition(Fullname)
    assert "test_hooks.Fullname" in str(caught.value)


def test_a_hook_with_no_definition_is_an_error() -> None:
    """An implementation whose name nobody defines is refused, naming it."""
    with pytest.raises(HookError, match=r"LoudFullname.*which no plugin defines"):
        registry(LoudFullname)


def test_a_hook_without_a_name_implements_the_definition_of_its_class_name() -> None:
    """As in opa-stack, a Hook with no `name` implements the hook named like its class."""

    class Nameless(HookDefinition):
        pass

    class NamelessHook(Hook):
        def run(self) -> str:
            return "ran"

    NamelessHook.__name__ = "Nameless"
    assert registry(Nameless, NamelessHook).call("Nameless", (), {}) == "ran"


def test_a_hook_without_a_name_or_definition_names_its_class() -> None:
    """A nameless Hook whose class name nobody defines is refused, naming the class."""

    class Orphan(Hook):
        def run(self) -> None:
            return None

    with pytest.raises(HookError, match=r"Orphan implements 'Orphan', which no plugin defines"):
        registry(Orphan)


def test_the_registry_gives_each_hooks_winner_by_name() -> None:
    """`hooks[name]` is the winning implementation, as opa-stack's plugin manager had it."""
    hooks = registry(Fullname, DefaultFullname, LoudFullname)
    winner = hooks["Fullname"]
    assert isinstance(winner, LoudFullname)
    assert winner.run("a", "b") == "A B"
    with pytest.raises(HookError, match="no hook definition named 'nope'"):
        hooks["nope"]


def test_a_missing_required_hook_lists_it() -> None:
    """A required definition with no implementation stops start-up, listing it."""
    with pytest.raises(HookError, match="required hooks have no implementation: Fullname"):
        registry(Fullname)


def test_a_sync_hook_for_an_async_definition_is_an_error() -> None:
    """The async flag of definition and implementation must agree."""

    class SyncLater(Hook):
        name = "later"

        def run(self, value: int) -> int:
            return value

    with pytest.raises(HookError, match=r"SyncLater is sync but definition 'later'.* is async"):
        registry(Later, SyncLater)


def test_an_async_hook_for_a_sync_definition_is_an_error() -> None:
    """An async implementation of a sync definition is refused."""

    class AsyncFullname(Hook):
        name = "Fullname"

        async def run(self, first: str, last: str) -> str:
            return first

    with pytest.raises(HookError, match="is async but definition 'Fullname'"):
        registry(Fullname, AsyncFullname)


def test_calling_in_the_wrong_mode_says_which_call_to_use() -> None:
    """call on an async hook (or call_async on a sync one) names the right function."""
    hooks = registry(Fullname, DefaultFullname, Later, AsyncLater)
    with pytest.raises(HookError, match="call it with call_hook_async"):
        hooks.call("later", (1,), {})
    with pytest.raises(HookError, match=r"call it with call_hook$"):
        asyncio.run(hooks.call_async("Fullname", ("a", "b"), {}))


def test_calling_an_unknown_hook_lists_the_known_ones() -> None:
    """An unknown hook name is an error that lists the defined hooks."""
    hooks = registry(Fullname, DefaultFullname)
    with pytest.raises(HookError, match=r"no hook definition named 'nope' \(defined: Fullname\)"):
        hooks.call("nope", (), {})


def test_a_defined_but_unimplemented_hook_says_so() -> None:
    """Calling an optional hook nobody implements is a clear error."""

    class Optional(HookDefinition):
        pass

    hooks = registry(Optional)
    with pytest.raises(HookError, match="no plugin implements it"):
        hooks.call("Optional", (), {})
