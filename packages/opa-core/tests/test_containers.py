"""The Dockerfile and compose file at the repository root name only things that exist.

Nothing is built or started: the files are parsed and every image, path and command
they name is checked against the repository and against `opa --help`; the compose file's
shape is checked against a schema of the Compose keys it uses.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import pytest
import yaml
from click.testing import CliRunner
from pydantic import (
    BaseModel,
    ConfigDict,
    PositiveInt,
    StringConstraints,
    ValidationError,
    model_validator,
)

from opa._cli import cli

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
OFFICIAL_IMAGES = {"redis", "rabbitmq"}
OPA_SERVICES = {"api", "worker-counter", "worker-math"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def copies() -> list[tuple[list[str], str]]:
    """Each COPY from the build context: its sources and its destination."""
    result = []
    for keyword, rest in instructions():
        if keyword != "COPY":
            continue
        words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        assert not any(w.startswith("--from") for w in words), "COPY --from is not expected"
        words = [w for w in words if not w.startswith("--")]
        result.append((words[:-1], words[-1]))
    return result


def command_line(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def opa_subcommands() -> set[str]:
    """The subcommands `opa --help` lists."""
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listing = result.output.split("Commands:", 1)[1]
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def repo_path_of(container_path: str) -> Path:
    """The repository file a container path comes from, through the Dockerfile's COPYs."""
    target = PurePosixPath(container_path)
    for sources, destination in copies():
        dest = PurePosixPath(destination)
        if len(sources) == 1 and target.is_relative_to(dest):
            return ROOT / sources[0] / target.relative_to(dest)
    raise AssertionError(f"no COPY in the Dockerfile puts anything at {container_path}")


def test_compose_file_parses_with_the_expected_services() -> None:
    """compose.yaml is YAML with the api, the two workers, Redis and RabbitMQ."""
    assert set(services()) == OPA_SERVICES | OFFICIAL_IMAGES


def test_compose_images_are_official_or_built_here() -> None:
    """Every image is an official redis/rabbitmq one or the image built from the Dockerfile."""
    built = {s["image"] for s in services().values() if "build" in s and "image" in s}
    assert len(built) <= 1
    for name, service in services().items():
        assert "image" in service or "build" in service, name
        image = service.get("image")
        if "build" in service or image in built:
            assert name in OPA_SERVICES, f"{name} runs the opa image"
            continue
        assert image is not None
        repository = image.split("@")[0].rsplit(":", 1)[0]
        repository = repository.removeprefix("docker.io/").removeprefix("library/")
        assert repository in OFFICIAL_IMAGES, f"{name}: {image} is not an official image"
        assert repository == name


def test_compose_build_contexts_and_dockerfiles_exist() -> None:
    """Each build context is a folder and its Dockerfile a file of this repository."""
    builds = [s["build"] for s in services().values() if "build" in s]
    assert builds
    for build in builds:
        context = COMPOSE.parent / (build if isinstance(build, str) else build["context"])
        assert context.is_dir()
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "")
        assert (context / (dockerfile or "Dockerfile")).is_file()
        assert (context / (dockerfile or "Dockerfile")).resolve() == DOCKERFILE


def test_compose_commands_are_opa_subcommands() -> None:
    """Every command runs `opa` with a subcommand that `opa --help` lists."""
    subcommands = opa_subcommands()
    commands = {name: command_line(s) for name, s in services().items() if "command" in s}
    assert set(commands) == OPA_SERVICES
    for name, words in commands.items():
        assert words[0] == "opa", f"{name}: {words}"
        assert words[1] in subcommands, f"{name}: opa has no subcommand {words[1]}"
    assert commands["api"][1] == "run"
    assert {commands["worker-counter"][1], commands["worker-math"][1]} == {"worker"}


def test_compose_run_options_are_accepted_by_opa_run() -> None:
    """The api's options are ones `opa run --help` documents."""
    help_text = CliRunner().invoke(cli, ["run", "--help"]).output
    options = [w for w in command_line(services()["api"]) if w.startswith("--")]
    assert options
    for option in options:
        assert option in help_text


def test_compose_workers_consume_the_example_queues() -> None:
    """The two workers consume the queues `counter` and `math` that the example routes to."""
    source = (ROOT / "examples" / "celery-task" / "celery_task" / "__init__.py").read_text()
    for name, queue in (("worker-counter", "counter"), ("worker-math", "math")):
        words = command_line(services()[name])
        assert words[words.index("-Q") + 1] == queue
        assert f'namespaced("{queue}")' in source


def test_compose_names_only_existing_example_folders() -> None:
    """Every /app/examples/... path in the compose file maps to a folder in examples/."""
    text = json.dumps(compose())
    paths = set(re.findall(r"/app/examples/[\w.-]+(?:/[\w.-]+)*", text))
    assert paths
    for path in paths:
        assert repo_path_of(path).is_dir(), f"{path} is not in the repository"
        assert (ROOT / "examples" / PurePosixPath(path).parts[3]).is_dir()


def test_compose_services_are_configured_through_opa_variables() -> None:
    """The opa services get their settings from OPA_* variables."""
    for name in OPA_SERVICES:
        environment = services()[name]["environment"]
        variables = (
            environment
            if isinstance(environment, dict)
            else dict(item.split("=", 1) for item in environment)
        )
        assert variables and all(key.startswith("OPA_") for key in variables)
        assert "OPA_PLUGIN_PATHS" in variables and "OPA_SETTINGS_DIR" in variables


def test_dockerfile_copy_sources_exist() -> None:
    """Every COPY source in the Dockerfile exists in the build context (the repo root)."""
    found = copies()
    assert found
    for sources, _ in found:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"


def test_dockerfile_installs_existing_packages_including_every_driver() -> None:
    """pip installs opa-core and every driver package, each a folder under packages/."""
    runs = " ".join(rest for keyword, rest in instructions() if keyword == "RUN")
    named = set(re.findall(r"/packages/([\w.-]+)", runs))
    for package in named:
        assert (ROOT / "packages" / package / "pyproject.toml").is_file(), package
    drivers = {p.name for p in (ROOT / "packages").glob("opa-driver-*")}
    assert {"opa-core"} | drivers <= named


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("FROM", "python:3.11-slim"),
        ("CMD", '["opa", "run", "--host", "0.0.0.0", "--port", "8000"]'),
    ],
)
def test_dockerfile_base_and_default_command(keyword: str, expected: str) -> None:
    """The image starts from python:3.11-slim and serves with `opa run --host 0.0.0.0`."""
    assert [rest for kw, rest in instructions() if kw == keyword] == [expected]


def test_dockerfile_runs_as_a_non_root_user() -> None:
    """The last USER is a named, non-root user."""
    users = [rest for keyword, rest in instructions() if keyword == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")


# The part of the Compose specification compose.yaml uses, as a schema: the docker CLI here
# has no compose plugin, so `docker compose config` cannot check the file.
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Build(_Strict):
    context: str
    dockerfile: str = "Dockerfile"


class _Healthcheck(_Strict):
    test: list[str]
    interval: Annotated[str, StringConstraints(pattern=r"^\d+(ms|s|m|h)$")]
    timeout: Annotated[str, StringConstraints(pattern=r"^\d+(ms|s|m|h)$")]
    retries: PositiveInt


class _DependsOn(_Strict):
    condition: Literal["service_started", "service_healthy", "service_completed_successfully"]


class _Deploy(_Strict):
    replicas: PositiveInt


# "HOST:CONTAINER" or "HOST_FROM-HOST_TO:CONTAINER" (one host port per replica).
_PORT = r"^(\d+)(?:-(\d+))?:(\d+)$"


class _Service(_Strict):
    image: str | None = None
    build: _Build | None = None
    command: list[str] | None = None
    environment: dict[str, str] = {}
    depends_on: dict[str, _DependsOn] = {}
    deploy: _Deploy | None = None
    ports: list[Annotated[str, StringConstraints(pattern=_PORT)]] = []
    healthcheck: _Healthcheck | None = None
    restart: Literal["no", "always", "on-failure", "unless-stopped"] | None = None


class _Compose(_Strict):
    model_config = ConfigDict(extra="allow", strict=True)  # x-... extension fields

    services: dict[str, _Service]

    @model_validator(mode="after")
    def _only_extensions_beside_services(self) -> _Compose:
        for key in self.model_extra or {}:
            assert key.startswith("x-"), f"unknown top-level key {key!r}"
        return self


def test_compose_file_holds_to_the_compose_schema() -> None:
    """compose.yaml (its anchors merged) passes the schema of the Compose keys it uses."""
    checked = _Compose.model_validate(compose())
    for name, service in checked.services.items():
        for needed in service.depends_on:
            assert needed in checked.services, f"{name} depends on unknown {needed}"


def test_compose_replicates_the_api_with_a_host_port_each() -> None:
    """The api runs as several replicas of several workers, each replica on a host port."""
    api = _Compose.model_validate(compose()).services["api"]
    assert api.deploy is not None and api.deploy.replicas >= 2
    [port] = api.ports
    first, last, container = re.fullmatch(_PORT, port).groups()  # type: ignore[union-attr]
    assert int(last or first) - int(first) + 1 == api.deploy.replicas
    words = command_line(services()["api"])
    assert container == words[words.index("--port") + 1]
    assert int(words[words.index("--workers") + 1]) >= 2


def test_compose_shares_one_broker_and_one_result_backend() -> None:
    """Every opa service names the same broker and the same result backend."""
    prefix = "OPA_OPTIONAL_COMPONENTS__CELERY__OPTS__"
    for key in ("BROKER_URL", "BACKEND_URL"):
        named = {services()[name]["environment"][prefix + key] for name in OPA_SERVICES}
        assert len(named) == 1, f"{key}: {named}"


@pytest.mark.parametrize(
    ("service", "culprit"),
    [
        ({"image": "redis", "deploy": {"replicas": "two"}}, "replicas"),
        ({"image": "redis", "ports": ["8000:eighty"]}, "ports"),
        ({"image": "redis", "depends_on": {"db": {"condition": "healthy"}}}, "condition"),
        ({"image": "redis", "restart": "sometimes"}, "restart"),
        ({"image": "redis", "replicas": 2}, "replicas"),
    ],
)
def test_the_compose_schema_refuses_what_compose_would(
    service: dict[str, Any], culprit: str
) -> None:
    """The schema names the key at fault in a service Compose would refuse."""
    with pytest.raises(ValidationError, match=culprit):
        _Compose.model_validate({"services": {"cache": service}})
