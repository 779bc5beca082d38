"""Plugin classes written as opa-stack accepted them: nameless hooks, narrow Setup classes,
dict-like driver options, skipped components, and the old plugin-manager attributes."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import opa
from opa._errors import PluginError
from support import make_app, write_plugin

SKIPPED = {"LOAD": "auto", "DRIVER": "no-such-driver"}


def test_nameless_hook_and_definition_go_by_their_class_names(tmp_path: Path) -> None:
    """A HookDefinition and a Hook with no `name` meet through their class name."""
    write_plugin(
        tmp_path,
        "define_fullname",
        """
        from opa import HookDefinition, call_hook, get_router

        class fullname(HookDefinition):
            required = True

        router = get_router()

        @router.get("/fullname/{first}/{last}")
        def route(first: str, last: str) -> str:
            return call_hook("fullname", first, last)
        """,
    )
    write_plugin(
        tmp_path,
        "implement_fullname",
        """
        from opa import Hook

        class fullname(Hook):
            def run(self, first, last):
                return f"{last}, {first}"
        """,
    )
    with TestClient(make_app(PLUGIN_PATHS=[str(tmp_path)])) as client:
        assert client.get("/fullname/Ada/Lovelace").json() == "Lovelace, Ada"


SETUPS = """
from opa import Setup

seen = {}

class NoArguments(Setup):
    def __init__(self):
        seen["none"] = True

class Positional(Setup):
    def __init__(self, app):
        seen["positional"] = app

class Keywords(Setup):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        seen["keywords"] = self.app

class Inherited(Setup):
    pass
"""


def test_setup_classes_get_only_the_arguments_they_name(tmp_path: Path) -> None:
    """As opa-stack matched them to the signature: no argument, `app`, or **kwargs."""
    write_plugin(tmp_path, "setups", SETUPS)
    app = make_app(PLUGIN_PATHS=[str(tmp_path)])
    with TestClient(app):
        import setups  # type: ignore[import-not-found]

        assert setups.seen == {"none": True, "positional": app, "keywords": app}


def test_a_setup_asking_for_what_opa_does_not_pass_names_it(tmp_path: Path) -> None:
    """A required parameter other than `app` fails start-up naming plugin, class and name."""
    write_plugin(
        tmp_path,
        "greedy",
        """
        from opa import Setup

        class Greedy(Setup):
            def __init__(self, app, database):
                pass
        """,
    )
    with pytest.raises(PluginError) as caught, TestClient(make_app(PLUGIN_PATHS=[str(tmp_path)])):
        pass
    assert str(caught.value) == (
        f"plugin {tmp_path}/greedy: setup class Greedy failed: TypeError: __init__ asks for "
        "'database', which opa does not pass; it passes only app (by keyword)"
    )


def test_driver_options_read_like_opa_stacks_dict(tmp_path: Path) -> None:
    """`opts['URL']`, `opts.get(key, default)` and `in` work beside attributes."""
    write_plugin(
        tmp_path,
        "dict_driver",
        """
        from opa import Driver, get_instance, get_router

        class DictDriver(Driver):
            name = "dict-driver"

            def connect(self):
                opts = self.opts
                self.instance = {
                    "url": opts["URL"],
                    "pool": opts.get("POOL", 4),
                    "extra": opts.get("EXTRA"),
                    "has_pool": "POOL" in opts,
                    "attribute": opts.URL,
                }

        router = get_router()

        @router.get("/opts")
        def read():
            return get_instance("thing")
        """,
    )
    settings = {
        "PLUGIN_PATHS": [str(tmp_path)],
        "OPTIONAL_COMPONENTS": {
            "THING": {"LOAD": "yes", "DRIVER": "dict-driver", "OPTS": {"URL": "x://y", "EXTRA": 1}}
        },
    }
    with TestClient(make_app(**settings)) as client:
        assert client.get("/opts").json() == {
            "url": "x://y",
            "pool": 4,
            "extra": 1,
            "has_pool": False,
            "attribute": "x://y",
        }


def test_a_missing_option_key_names_the_ones_set() -> None:
    """`opts['X']` for an option the configuration did not set is a KeyError listing those set."""
    options = opa.DriverOptions.model_validate({"URL": "x://y"})
    with pytest.raises(KeyError, match=r"option 'PORT' is not set \(set: URL\)"):
        options["PORT"]
    assert options.keys() == ["URL"]


def test_a_skipped_component_is_a_503_and_get_instance_with_a_default_asks(tmp_path: Path) -> None:
    """get_instance keeps the 503 for a skipped component; get_instance(name, None) is None."""
    write_plugin(
        tmp_path,
        "maybe",
        """
        from opa import get_instance, get_router

        router = get_router()

        @router.get("/strict")
        def strict():
            return get_instance("cache")

        @router.get("/maybe")
        def maybe():
            return {"there": get_instance("cache", None) is not None}
        """,
    )
    app = make_app(PLUGIN_PATHS=[str(tmp_path)], OPTIONAL_COMPONENTS={"CACHE": SKIPPED})
    with TestClient(app) as client:
        strict = client.get("/strict")
        assert strict.status_code == 503
        assert strict.json()["detail"].startswith("component 'cache' is skipped")
        assert client.get("/maybe").json() == {"there": False}


def test_the_plugin_managers_old_attributes(tmp_path: Path) -> None:
    """drivers, hooks, hook_definitions, optional_components, call and call_async work."""
    write_plugin(
        tmp_path,
        "old_manager",
        """
        from opa import Driver, Hook, HookDefinition

        class greet(HookDefinition):
            pass

        class greet_async(HookDefinition):
            is_async = True

        class greet_hook(Hook):
            name = "greet"

            def run(self, who):
                return f"hi {who}"

        class greet_async_hook(Hook):
            name = "greet_async"

            async def run(self, who):
                return f"hello {who}"

        class Thing(Driver):
            name = "thing"

            def connect(self):
                self.instance = "thing"
        """,
    )
    app = make_app(PLUGIN_PATHS=[str(tmp_path)], OPTIONAL_COMPONENTS={"CACHE": SKIPPED})
    with TestClient(app):
        manager = opa.get_plugin_manager()
        import old_manager  # type: ignore[import-not-found]

        assert manager.drivers["thing"] is old_manager.Thing
        assert "thing" in manager.drivers
        assert manager.hooks["greet"].run("you") == "hi you"
        assert manager.hook_definitions["greet"] is old_manager.greet
        assert list(manager.optional_components) == ["cache"]
        with pytest.warns(DeprecationWarning, match=r"PluginManager.call is deprecated; use opa"):
            assert manager.call("greet", "me") == "hi me"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert asyncio.run(manager.call_async("greet_async", "me")) == "hello me"


@pytest.mark.parametrize(
    ("attribute", "replacement"),
    [
        ("store", "opa keeps no shared store"),
        ("status", "a component's state is opa.get_component(name).status"),
    ],
)
def test_the_plugin_managers_dropped_attributes_name_their_replacement(
    attribute: str, replacement: str
) -> None:
    """store and status raise an AttributeError that says what to use instead."""
    app = make_app()
    with TestClient(app), pytest.raises(AttributeError) as caught:
        getattr(opa.get_plugin_manager(), attribute)
    assert str(caught.value).startswith(f"PluginManager.{attribute} was opa-stack's; {replacement}")
    assert str(caught.value).endswith("(see 'Migrating from opa-stack' (docs/migrating.md))")


@pytest.mark.parametrize(
    ("attribute", "replacement"),
    [
        ("load", "a component's LOAD is opa.get_component(self.component).spec.load"),
        ("pm", "the plugin manager is opa.get_plugin_manager()"),
        (
            "get",
            "the driver's instance is self.instance, and plugin code asks opa.get_instance(name)",
        ),
    ],
)
def test_a_drivers_dropped_attributes_name_their_replacement(
    attribute: str, replacement: str
) -> None:
    """A driver's .load, .pm and .get raise an AttributeError that says what to use instead."""

    class Plain(opa.Driver):
        name = "plain"

        def connect(self) -> None:
            self.instance = "plain"

    driver = Plain("plain", opa.DriverOptions())
    with pytest.raises(AttributeError) as caught:
        getattr(driver, attribute)
    assert str(caught.value) == (
        f"driver attribute {attribute!r} was opa-stack's; {replacement} "
        "(see 'Migrating from opa-stack' (docs/migrating.md))"
    )
    with pytest.raises(AttributeError, match="'Plain' object has no attribute 'nope'"):
        driver.nope  # type: ignore[attr-defined]  # noqa: B018
