"""opa-stack's import paths outside opa.plugins: deprecated aliases, or errors naming the fix."""

from __future__ import annotations

import importlib
import warnings

import pytest

import opa
from opa._errors import RemovedNameError

MIGRATION = "(see 'Migrating from opa-stack' (docs/migrating.md))"

PLUGIN_NAMES = [
    "HookDefinition",
    "Hook",
    "Driver",
    "Setup",
    "PluginManager",
    "get_plugin_manager",
    "get_component",
    "get_instance",
    "get_router",
    "call_hook",
    "call_hook_async",
]


@pytest.mark.parametrize("name", PLUGIN_NAMES)
def test_opa_core_plugin_names_are_opas_own_with_a_warning(name: str) -> None:
    """`from opa.core.plugin import X` gives opa.X and a warning naming `from opa import X`."""
    module = importlib.import_module("opa.core.plugin")
    with pytest.warns(DeprecationWarning) as caught:
        found = getattr(module, name)
    assert found is getattr(opa, name)
    assert str(caught[0].message) == (
        f"opa.core.plugin.{name} is deprecated; use 'from opa import {name}' {MIGRATION}"
    )


def test_the_plugin_guides_import_line_works() -> None:
    """The line opa-stack's plugin guide taught imports, warning at the importing line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from opa.core.plugin import Hook, HookDefinition, Setup, get_router  # noqa: F401
    assert [w.filename for w in caught] == [__file__] * 4


def test_a_star_import_of_opa_core_plugin_gives_every_name() -> None:
    """`from opa.core.plugin import *` brings all of opa-stack's plugin names, each warned."""
    namespace: dict[str, object] = {}
    with pytest.warns(DeprecationWarning):
        exec("from opa.core.plugin import *", namespace)
    assert {name for name in namespace if not name.startswith("__")} == set(PLUGIN_NAMES)


def test_opa_core_logger_log_is_opas_log() -> None:
    """`from opa.core.logger import log` gives opa.log and names the new import."""
    with pytest.warns(DeprecationWarning, match=r"use 'from opa import log'"):
        from opa.core.logger import log
    assert log is opa.log


def test_opa_utils_unique_keeps_the_first_of_each_in_order() -> None:
    """opa.utils.unique still works, and names what to write instead."""
    with pytest.warns(DeprecationWarning, match=r"use list\(dict.fromkeys\(items\)\)"):
        from opa.utils import unique
    assert unique(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "from opa.utils import host_exists",
            "opa.utils.host_exists is not in opa: a component under LOAD: auto is connected "
            "only when its hosts accept TCP; ask opa.get_instance(name, None) whether it is "
            "there",
        ),
        (
            "from opa.utils.mongodb import get_database",
            "opa.utils.mongodb (get_database) is not in opa: configure a MongoDB component "
            "and take its database from the client, as in "
            "get_instance('mongodb').get_default_database() or get_instance('mongodb')['opa']",
        ),
        (
            "from opa.models.test import Item",
            "opa.models is not in opa: opa ships no data models; define your pydantic "
            "models in your own plugin",
        ),
        (
            "from opa import get_util",
            "opa.get_util is not in opa: a plugin's module is imported by its own name, since "
            "plugin folders are on sys.path (from demo_util import double)",
        ),
        (
            "from opa.core.plugin import get_util",
            "opa.core.plugin.get_util is not in opa: a plugin's module is imported by its own "
            "name, since plugin folders are on sys.path (from demo_util import double)",
        ),
    ],
)
def test_names_opa_does_not_provide_say_what_replaces_them(statement: str, message: str) -> None:
    """Importing a name opa dropped is an ImportError whose message names the replacement."""
    with pytest.raises(ImportError) as caught:
        exec(statement, {})
    assert isinstance(caught.value, RemovedNameError)
    assert str(caught.value) == f"{message} {MIGRATION}"


def test_other_missing_names_fail_as_usual() -> None:
    """A name opa-stack never had is a plain AttributeError, not a migration message."""
    with pytest.raises(AttributeError, match=r"module 'opa\.core\.plugin' has no attribute 'Nope'"):
        importlib.import_module("opa.core.plugin").Nope  # noqa: B018
    with pytest.raises(AttributeError, match="module 'opa' has no attribute 'nope'"):
        opa.nope  # type: ignore[attr-defined]  # noqa: B018
