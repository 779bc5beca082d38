"""Plugin discovery, metadata, filters, collection by kind, and start-up order."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opa._config import load_settings
from opa._discovery import discover, import_candidate, read_meta
from opa._errors import ConfigError, PluginError
from opa._plugin_manager import PluginManager
from support import make_app, write_plugin


def manager_for(tmp_path: Path, **settings: Any) -> PluginManager:
    settings.setdefault("OPTIONAL_COMPONENTS", {})
    settings.setdefault("PLUGIN_ENTRY_POINTS", False)
    manager = PluginManager(load_settings(settings_dir=tmp_path / "none", overrides=settings))
    manager.load()
    return manager


def test_modules_and_packages_are_candidates_and_the_first_folder_wins(tmp_path: Path) -> None:
    """Top-level modules and packages are found; a name in two folders comes from the first."""
    first, second = tmp_path / "first", tmp_path / "second"
    write_plugin(first, "shared", "WHERE = 'first'\n")
    write_plugin(second, "shared", "WHERE = 'second'\n")
    write_plugin(second, "pkg_plugin", "WHERE = 'package'\n", package=True)
    (second / "notes.txt").write_text("not a plugin")
    found = {c.name: c for c in discover([first, second])}
    assert set(found) == {"shared", "pkg_plugin"}
    assert found["shared"].identity == f"{first}/shared"
    assert found["pkg_plugin"].is_package


def test_the_first_folder_wins_even_when_a_filter_rejects_it(tmp_path: Path) -> None:
    """A rejected plugin in the first folder still hides its namesake in a later one."""
    first, second = tmp_path / "first", tmp_path / "second"
    write_plugin(first, "dupe", "from opa import get_router\nrouter = get_router()\n")
    write_plugin(second, "dupe", "raise RuntimeError('second folder must not load')\n")
    manager = manager_for(
        tmp_path, PLUGIN_PATHS=[str(first), str(second)], PLUGIN_BLACKLIST_LIST=[f"{first}/dupe"]
    )
    assert manager.plugins == []


def test_metadata_files_give_tags(tmp_path: Path) -> None:
    """name-meta.json beside a module and meta.json in a package give the plugin's tags."""
    write_plugin(tmp_path, "tagged", "")
    (tmp_path / "tagged-meta.json").write_text('{"tags": ["demo", "redis"]}')
    write_plugin(tmp_path, "pkgtagged", "", package=True)
    (tmp_path / "pkgtagged" / "meta.json").write_text('{"tags": ["pkg"]}')
    write_plugin(tmp_path, "plain", "")
    tags = {c.name: c.tags for c in discover([tmp_path])}
    assert tags == {"tagged": {"demo", "redis"}, "pkgtagged": {"pkg"}, "plain": set()}


def test_a_malformed_meta_file_names_the_file(tmp_path: Path) -> None:
    """A meta file that is not valid JSON is an error naming that file."""
    bad = tmp_path / "broken-meta.json"
    bad.write_text("{tags: [")
    with pytest.raises(PluginError, match=r"broken-meta.json"):
        read_meta(bad)
    (tmp_path / "wrong-meta.json").write_text('{"tags": "redis"}')
    with pytest.raises(PluginError, match="'tags' must be a list"):
        read_meta(tmp_path / "wrong-meta.json")


@pytest.mark.parametrize(
    ("setting", "value", "kept"),
    [
        ("PLUGIN_WHITELIST_LIST", ["{folder}/alpha"], {"alpha"}),
        ("PLUGIN_WHITELIST_RE", ".*/(alpha|beta)$", {"alpha", "beta"}),
        ("PLUGIN_WHITELIST_TAGS", ["red"], {"alpha"}),
        ("PLUGIN_BLACKLIST_LIST", ["{folder}/alpha"], {"beta", "gamma"}),
        ("PLUGIN_BLACKLIST_RE", ".*gam+a", {"alpha", "beta"}),
        ("PLUGIN_BLACKLIST_TAGS", ["red", "blue"], {"gamma"}),
    ],
)
def test_each_filter_keeps_the_right_plugins(
    tmp_path: Path, setting: str, value: Any, kept: set[str]
) -> None:
    """Each of the six white/black filters selects plugins by identity, regex or tag."""
    folder = tmp_path / "plugins"
    for name in ("alpha", "beta", "gamma"):
        write_plugin(folder, name, "")
    (folder / "alpha-meta.json").write_text('{"tags": ["red"]}')
    (folder / "beta-meta.json").write_text('{"tags": ["blue"]}')
    if isinstance(value, list):
        value = [v.format(folder=folder) for v in value]
    manager = manager_for(tmp_path, PLUGIN_PATHS=[str(folder)], **{setting: value})
    assert {p.identity.rsplit("/", 1)[1] for p in manager.plugins} == kept


def test_all_filters_must_pass(tmp_path: Path) -> None:
    """A plugin must pass every configured filter, not just one."""
    folder = tmp_path / "plugins"
    write_plugin(folder, "alpha", "")
    write_plugin(folder, "beta", "")
    (folder / "alpha-meta.json").write_text('{"tags": ["red"]}')
    manager = manager_for(
        tmp_path,
        PLUGIN_PATHS=[str(folder)],
        PLUGIN_WHITELIST_RE=".*a",
        PLUGIN_BLACKLIST_TAGS=["red"],
    )
    assert [p.identity for p in manager.plugins] == [f"{folder}/beta"]


@pytest.mark.parametrize(
    ("expression", "kept"),
    [
        ("alpha", {"alpha", "beta"}),  # matched from the start: "/tmp/..." does not start so
        (".*alpha", {"beta"}),
        ("{folder}/al", {"beta"}),  # a prefix of the identity is enough
    ],
)
def test_the_regular_expressions_match_from_the_start_of_the_identity(
    tmp_path: Path, expression: str, kept: set[str]
) -> None:
    """PLUGIN_*_RE match `<folder>/<name>` from its start (re.match), as opa-stack did."""
    folder = tmp_path / "plugins"
    for name in ("alpha", "beta"):
        write_plugin(folder, name, "")
    blacklist = expression.format(folder=folder)
    manager = manager_for(tmp_path, PLUGIN_PATHS=[str(folder)], PLUGIN_BLACKLIST_RE=blacklist)
    assert {p.identity.rsplit("/", 1)[1] for p in manager.plugins} == kept
    whitelisted = manager_for(tmp_path, PLUGIN_PATHS=[str(folder)], PLUGIN_WHITELIST_RE=blacklist)
    assert {p.identity.rsplit("/", 1)[1] for p in whitelisted.plugins} == {"alpha", "beta"} - kept


def test_a_bad_regex_names_the_setting(tmp_path: Path) -> None:
    """An invalid regular expression in a filter names the setting before any plugin loads."""
    with pytest.raises(
        ConfigError, match=r"^setting PLUGIN_BLACKLIST_RE \(OPA_PLUGIN_BLACKLIST_RE\)"
    ):
        manager_for(tmp_path, PLUGIN_BLACKLIST_RE="(unclosed")


def test_a_plugin_that_fails_to_import_names_the_file_and_the_error(tmp_path: Path) -> None:
    """An import error names the plugin's file and the original exception."""
    path = write_plugin(tmp_path / "p", "explodes", "raise ValueError('kaboom')\n")
    with pytest.raises(PluginError) as caught:
        manager_for(tmp_path, PLUGIN_PATHS=[str(tmp_path / "p")])
    assert str(path) in str(caught.value)
    assert "ValueError: kaboom" in str(caught.value)
    assert "explodes" not in sys.modules


def test_a_missing_plugin_path_warns(tmp_path: Path) -> None:
    """A plugin path that does not exist gives a warning, not an error."""
    with pytest.warns(UserWarning, match="does-not-exist"):
        manager_for(tmp_path, PLUGIN_PATHS=[str(tmp_path / "does-not-exist")])


def test_only_classes_defined_in_the_plugin_are_collected(tmp_path: Path) -> None:
    """Classes imported into a plugin module are not collected from it."""
    folder = tmp_path / "p"
    write_plugin(
        folder,
        "definer",
        """
        from opa import HookDefinition, Hook
        class Shout(HookDefinition):
            pass
        class DefaultShout(Hook):
            name = "Shout"
            order = -1
            def run(self, text):
                return text.upper()
        """,
    )
    write_plugin(folder, "importer", "from definer import Shout, DefaultShout\n")
    manager = manager_for(tmp_path, PLUGIN_PATHS=[str(folder)])
    by_name = {p.identity.rsplit("/", 1)[1]: p for p in manager.plugins}
    assert [d.__name__ for d in by_name["definer"].hook_definitions] == ["Shout"]
    assert by_name["importer"].hook_definitions == []
    assert by_name["importer"].hooks == []


def test_plugins_can_import_each_other(tmp_path: Path) -> None:
    """Plugin folders are on sys.path, so one plugin imports another by name."""
    folder = tmp_path / "p"
    write_plugin(folder, "zz_helper", "VALUE = 41\n")
    write_plugin(
        folder,
        "aa_user",
        """
        from opa import get_router
        from zz_helper import VALUE
        router = get_router()
        @router.get("/value")
        def value() -> int:
            return VALUE + 1
        """,
    )
    with TestClient(make_app(PLUGIN_PATHS=[str(folder)])) as client:
        assert client.get("/value").json() == 42


def test_setup_runs_last_with_the_app_after_components_connect(tmp_path: Path) -> None:
    """Setup classes get the app as keyword `app`, after components have connected."""
    folder = tmp_path / "p"
    write_plugin(
        folder,
        "with_setup",
        """
        from opa import Driver, Setup, get_component
        SEEN = []
        class Memory(Driver):
            name = "memory"
            def connect(self):
                self.instance = {"connected": True}
        class Record(Setup):
            def __init__(self, app):
                super().__init__(app)
                SEEN.append((app.title, get_component("mem").status.value))
        """,
    )
    components = {"MEM": {"LOAD": "yes", "DRIVER": "memory"}}
    app = make_app(PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=components)
    plugin_module = sys.modules["with_setup"]
    assert plugin_module.SEEN == []
    with TestClient(app):
        assert plugin_module.SEEN == [("opa", "ok")]


def test_a_plugin_router_is_included(tmp_path: Path) -> None:
    """A module-level `router` is included in the app."""
    write_plugin(
        tmp_path / "p",
        "routed",
        """
        from opa import get_router
        router = get_router(prefix="/r")
        @router.get("/ping")
        def ping():
            return {"pong": True}
        """,
    )
    with TestClient(make_app(PLUGIN_PATHS=[str(tmp_path / "p")])) as client:
        assert client.get("/r/ping").json() == {"pong": True}


def test_same_named_plugins_in_two_apps_each_load_their_own_file(tmp_path: Path) -> None:
    """A second app with another folder's same-named plugin imports that file, not a stale one."""
    for which in ("one", "two"):
        write_plugin(
            tmp_path / which,
            "samename",
            f"""
            from opa import get_router
            router = get_router()
            @router.get("/which")
            def which():
                return "{which}"
            """,
        )
    for which in ("one", "two"):
        app = make_app(PLUGIN_PATHS=[str(tmp_path / which)])
        with TestClient(app) as client:
            assert client.get("/which").json() == which


def test_import_candidate_refuses_nothing_it_found(tmp_path: Path) -> None:
    """Importing a candidate loads exactly the file discovery found."""
    write_plugin(tmp_path, "exact_file", "MARK = 'here'\n")
    (candidate,) = discover([tmp_path])
    assert import_candidate(candidate).MARK == "here"


def test_installed_distributions_provide_plugins_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An opa.plugins entry point's module is loaded as a plugin, and filters apply to it."""
    from fake_distributions import make_distribution

    make_distribution(
        tmp_path / "site",
        "acme-opa-plugin",
        "1.0",
        {"opa.plugins": {"acme": "acme_plugin"}},
        {
            "acme_plugin": """
            from opa import get_router
            router = get_router()
            @router.get("/acme")
            def acme():
                return "from a distribution"
            """
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    app = make_app(PLUGIN_ENTRY_POINTS=True)
    with TestClient(app) as client:
        assert client.get("/acme").json() == "from a distribution"
    assert "acme-opa-plugin/acme" in [p.identity for p in opa_manager(app).plugins]
    filtered = make_app(PLUGIN_ENTRY_POINTS=True, PLUGIN_BLACKLIST_RE="^acme-")
    assert all(p.identity != "acme-opa-plugin/acme" for p in opa_manager(filtered).plugins)


def test_a_broken_entry_point_plugin_names_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin distribution that fails to import is reported by name, with the error."""
    from fake_distributions import make_distribution

    make_distribution(
        tmp_path / "site",
        "broken-opa-plugin",
        "1.0",
        {"opa.plugins": {"broken": "broken_plugin_mod"}},
        {"broken_plugin_mod": "raise ImportError('needs libfoo')\n"},
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(PluginError, match=r"plugin broken-opa-plugin/broken .*needs libfoo"):
        make_app(PLUGIN_ENTRY_POINTS=True)


def opa_manager(app: Any) -> PluginManager:
    manager: PluginManager = app.state.opa
    return manager


def test_a_plugin_named_like_an_imported_module_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin named like a module imported from outside sys.path is refused, naming it."""
    stray = ModuleType("stray_library")
    stray.__file__ = str(tmp_path / "elsewhere" / "stray_library.py")
    monkeypatch.setitem(sys.modules, "stray_library", stray)
    write_plugin(tmp_path / "p", "stray_library", "VALUE = 1\n")
    with pytest.raises(PluginError, match=r"'stray_library' that is already imported"):
        manager_for(tmp_path, PLUGIN_PATHS=[str(tmp_path / "p")])
    assert sys.modules["stray_library"] is stray
