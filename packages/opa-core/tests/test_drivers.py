"""The driver contract and registry: flags, versions, entry points, clashes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fake_distributions import make_distribution
from opa._driver_registry import DriverRegistry
from opa._drivers import CONTRACT_VERSION, Driver, check_driver_class, driver_is_async
from opa._errors import DriverError

GOOD_DRIVER = """
from opa import Driver

class GoodDriver(Driver):
    name = "good"
    is_async = False
    contract_version = 1

    def connect(self):
        self.instance = "good-instance"
"""


def test_a_flag_that_disagrees_with_the_methods_names_the_class() -> None:
    """is_async=True with a plain connect() is refused, naming class and method."""

    class Liar(Driver):
        name = "liar"
        is_async = True

        def connect(self) -> None:
            self.instance = 1

    with pytest.raises(DriverError, match=r"Liar .*is_async=True but connect\(\) is a plain"):
        check_driver_class(Liar, "test")


def test_every_contract_method_must_agree_with_the_flag() -> None:
    """A sync driver with an async disconnect() is refused."""

    class Mixed(Driver):
        name = "mixed"
        is_async = False

        def connect(self) -> None:
            self.instance = 1

        async def disconnect(self) -> None:
            return None

    with pytest.raises(DriverError, match=r"disconnect\(\) is a coroutine"):
        check_driver_class(Mixed, "test")


def test_drivers_written_before_the_flag_infer_it_from_connect() -> None:
    """A plugin driver without is_async (as the original had) is async iff connect is."""

    class OldAsync(Driver):
        name = "old-async"

        async def connect(self) -> None:
            self.instance = 1

    check_driver_class(OldAsync, "test")
    assert driver_is_async(OldAsync) is True


def test_a_driver_for_another_contract_says_which_versions_fit() -> None:
    """A driver built for an unsupported contract is refused with the versions that fit."""

    class Future(Driver):
        name = "future"
        contract_version = CONTRACT_VERSION + 1

        def connect(self) -> None:
            self.instance = 1

    with pytest.raises(DriverError, match=f"accepts contract {CONTRACT_VERSION}"):
        check_driver_class(Future, "test")


def test_a_driver_without_connect_or_name_is_refused() -> None:
    """The contract requires a name and a connect()."""

    class Nameless(Driver):
        def connect(self) -> None:
            return None

    class NoConnect(Driver):
        name = "no-connect"

    with pytest.raises(DriverError, match="has no name"):
        check_driver_class(Nameless, "test")
    with pytest.raises(DriverError, match=r"does not implement connect\(\)"):
        check_driver_class(NoConnect, "test")


def test_entry_point_drivers_load_by_name_case_insensitively(tmp_path: Path) -> None:
    """A driver is found through its opa.drivers entry point, whatever the case."""
    eps = make_distribution(
        tmp_path,
        "opa-driver-good",
        "1.2.3",
        {"opa.drivers": {"good": "good_mod:GoodDriver"}},
        {"good_mod": GOOD_DRIVER},
    )
    sys.path.insert(0, str(tmp_path))
    try:
        registry = DriverRegistry(eps)
        cls = registry.get("GOOD")
        assert cls is not None and cls.__name__ == "GoodDriver"
        assert registry.installed["good"].distribution == "opa-driver-good"
        assert registry.installed["good"].version == "1.2.3"
        assert registry.describe("good") == (False, "opa-driver-good")
    finally:
        sys.path.remove(str(tmp_path))


def test_an_entry_point_driver_without_a_contract_version_is_refused(tmp_path: Path) -> None:
    """Distributed drivers must declare the contract they were built for."""
    source = GOOD_DRIVER.replace("    contract_version = 1\n", "")
    eps = make_distribution(
        tmp_path,
        "opa-driver-vague",
        "1.0",
        {"opa.drivers": {"good": "vague_mod:GoodDriver"}},
        {"vague_mod": source},
    )
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(DriverError, match=r"opa-driver-vague 1.0 declares no contract_version"):
            DriverRegistry(eps).get("good")
    finally:
        sys.path.remove(str(tmp_path))


def test_an_entry_point_that_fails_to_import_names_the_distribution(tmp_path: Path) -> None:
    """A broken driver distribution is reported by name with the original error, and the
    reinstall that likely fixes it."""
    eps = make_distribution(
        tmp_path,
        "opa-driver-broken",
        "0.1",
        {"opa.drivers": {"broken": "broken_mod:Driver"}},
        {"broken_mod": "import not_a_real_module_xyz\n"},
    )
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(DriverError, match=r"opa-driver-broken 0.1 failed to load") as caught:
            DriverRegistry(eps).get("broken")
        assert "not_a_real_module_xyz" in str(caught.value)
        assert str(caught.value).endswith(
            "a module it needs is missing: reinstall it with its dependencies "
            "(pip install --force-reinstall opa-driver-broken)"
        )
    finally:
        sys.path.remove(str(tmp_path))


def test_an_entry_point_name_must_match_the_driver_name(tmp_path: Path) -> None:
    """The entry point name is the config name, so it must equal Driver.name."""
    eps = make_distribution(
        tmp_path,
        "opa-driver-misnamed",
        "1.0",
        {"opa.drivers": {"other": "mis_mod:GoodDriver"}},
        {"mis_mod": GOOD_DRIVER},
    )
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(DriverError, match=r"entry point name and Driver.name must match"):
            DriverRegistry(eps).get("other")
    finally:
        sys.path.remove(str(tmp_path))


def test_a_plugin_driver_clashing_with_an_installed_one_is_an_error(tmp_path: Path) -> None:
    """A plugin driver may not take the name of an installed driver distribution."""
    eps = make_distribution(
        tmp_path, "opa-driver-good", "1.0", {"opa.drivers": {"good": "unused_mod:GoodDriver"}}
    )

    class Impostor(Driver):
        name = "Good"

        def connect(self) -> None:
            self.instance = 1

    with pytest.raises(
        DriverError, match="clashes with the installed distribution opa-driver-good"
    ):
        DriverRegistry(eps).add_plugin_driver(Impostor, "/plugins/impostor")


def test_two_plugin_driver_classes_with_one_name_clash_but_one_class_twice_is_fine() -> None:
    """Registering the same class twice is fine; two classes with one name are an error."""

    class One(Driver):
        name = "same"

        def connect(self) -> None:
            self.instance = 1

    class Two(Driver):
        name = "SAME"

        def connect(self) -> None:
            self.instance = 2

    registry = DriverRegistry([])
    registry.add_plugin_driver(One, "/p/one")
    registry.add_plugin_driver(One, "/p/one")
    with pytest.raises(DriverError, match="two driver classes are named 'same'"):
        registry.add_plugin_driver(Two, "/p/two")


def test_only_the_configured_drivers_entry_point_is_imported(tmp_path: Path) -> None:
    """With one driver configured, other installed drivers and their backends stay unimported."""
    for letter in ("a", "b"):
        make_distribution(
            tmp_path,
            f"opa-driver-fake-{letter}",
            "1.0",
            {"opa.drivers": {f"fake-{letter}": f"fake_driver_{letter}:FakeDriver"}},
            {
                f"fake_driver_{letter}": f"""
                from opa import Driver

                class FakeDriver(Driver):
                    name = "fake-{letter}"
                    contract_version = 1

                    def connect(self):
                        import fake_backend_{letter}
                        self.instance = fake_backend_{letter}.CLIENT
                """,
                f"fake_backend_{letter}": "CLIENT = 'client'\n",
            },
        )
    script = """
import json, sys
from fastapi.testclient import TestClient
import opa
app = opa.create_app(
    {"OPTIONAL_COMPONENTS": {"ONLY": {"LOAD": "yes", "DRIVER": "fake-a"}},
     "PLUGIN_ENTRY_POINTS": False},
    settings_dir="/nonexistent",
)
with TestClient(app):
    instance = opa.get_instance("only")
print(json.dumps({"instance": instance, "modules": sorted(sys.modules)}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["instance"] == "client"
    assert "fake_backend_a" in report["modules"]
    assert "fake_driver_b" not in report["modules"]
    assert "fake_backend_b" not in report["modules"]
    for backend in ("redis", "walrus", "motor", "pymongo", "celery", "kombu"):
        assert backend not in report["modules"]
