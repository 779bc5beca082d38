"""The one entry to every task of the monorepo: `nox` runs tests, lint, typecheck and build.

Packages are discovered from packages/*/pyproject.toml, so a new package is picked up by
every session without editing this file. `nox -l` lists the sessions.
"""

from __future__ import annotations

import configparser
import json
import shutil
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

nox.needs_version = ">=2024.10"
nox.options.default_venv_backend = "uv"
nox.options.sessions = [
    "tests",
    "tests_oldest_redis",
    "integration",
    "lint",
    "typecheck",
    "build",
    "docs",
]

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"
CORE = "opa-core"
# Pinned so that a new release of a checker never turns main red on its own.
RUFF = "ruff==0.17.6"
MYPY = "mypy==2.4.1"
IMPORT_LINTER = "import-linter>=2.17,<3"
LINT_CONFIG = ROOT / ".importlinter"
# The lists of .importlinter that must name every add-on package.
LINT_PACKAGE_LISTS = [
    ("importlinter", "root_packages"),
    ("importlinter:contract:entry-modules", "source_modules"),
    ("importlinter:contract:core-knows-no-driver", "forbidden_modules"),
]
# opa-core must pull none of these, whether or not a driver package exists yet.
BACKEND_LIBRARIES = [
    "redis",
    "walrus",
    "motor",
    "pymongo",
    "celery",
    "kombu",
    "aioredis",
    "sqlalchemy",
]
# The extra of each package that brings OpenTelemetry tracing (setting TRACING); nothing of
# OpenTelemetry may come with a package installed without it.
OTEL = "otel"


@dataclass(frozen=True)
class Package:
    """One distribution of the monorepo, as its pyproject.toml declares it."""

    name: str
    folder: Path
    import_name: str
    dependencies: tuple[str, ...]
    extras: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    @property
    def is_core(self) -> bool:
        return self.name == CORE

    def requirements(self, extras: Iterable[str] = ()) -> list[Requirement]:
        """What the package needs, with what the named extras add."""
        texts = list(self.dependencies)
        for extra in extras:
            texts += self.extras.get(extra, ())
        return [Requirement(text) for text in texts]

    @property
    def backend_libraries(self) -> set[str]:
        """What a package depends on besides the monorepo's own packages and what opa-core
        itself needs (pydantic is no backend); none for opa-core, which is the platform."""
        if self.is_core:
            return set()
        core_needs = {canonicalize_name(req.name) for req in PACKAGES[CORE].requirements()}
        names = {canonicalize_name(req.name) for req in self.requirements()}
        return names - set(PACKAGES) - core_needs


def discover_packages() -> dict[str, Package]:
    """Every packages/*/pyproject.toml, by canonical distribution name."""
    packages: dict[str, Package] = {}
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        folder = pyproject.parent
        import_names = sorted(
            path.name for path in (folder / "src").iterdir() if (path / "py.typed").is_file()
        )
        extras = project.get("optional-dependencies", {})
        packages[canonicalize_name(project["name"])] = Package(
            name=canonicalize_name(project["name"]),
            folder=folder,
            import_name=import_names[0] if import_names else "",
            dependencies=tuple(project.get("dependencies", [])),
            extras={extra: tuple(reqs) for extra, reqs in extras.items()},
        )
    return packages


PACKAGES = discover_packages()
ADD_ONS = [package for package in PACKAGES.values() if not package.is_core]


def local_closure(package: Package, extras: Iterable[str] = ()) -> dict[str, set[str]]:
    """The package and every monorepo package it needs, transitively, each with the extras
    asked of it; *extras* are the package's own (say "test", whose needs count too)."""
    wanted: dict[str, set[str]] = {}
    pending = [(package.name, set(extras))]
    while pending:
        name, asked = pending.pop()
        known = wanted.get(name)
        if known is not None and asked <= known:
            continue
        wanted[name] = (known or set()) | asked
        for requirement in PACKAGES[name].requirements(wanted[name]):
            needed = canonicalize_name(requirement.name)
            if needed in PACKAGES:
                pending.append((needed, set(requirement.extras)))
    return wanted


def local_install_args(package: Package, extra: str = "") -> list[str]:
    """Install arguments for a package from its folder (built, not editable), with every
    monorepo package it needs (its `extra` included) from their folders too.

    So the code on main, not a release from PyPI, satisfies ranges such as opa-core's or
    opa-redis-common's. The reinstall flags make uv rebuild from the folders rather than
    reuse a wheel it cached earlier.
    """
    args: list[str] = []
    for name, extras in local_closure(package, [extra] if extra else []).items():
        folder = str(PACKAGES[name].folder)
        args += [
            "--reinstall-package",
            name,
            f"{folder}[{','.join(sorted(extras))}]" if extras else folder,
        ]
    return args


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests against that package alone, installed as users get it."""
    pkg = PACKAGES[package]
    session.install(*local_install_args(pkg, "test"))
    # From a folder outside the repo, so the installed package is imported, never src/.
    # Exit code 5 (no tests collected) fails the session like any other non-zero code.
    with session.chdir(session.create_tmp()):
        session.run("pytest", str(pkg.folder / "tests"), *session.posargs)


def lower_bounds(package: Package) -> list[str]:
    """``name==lowest`` for each of the package's backend libraries, from its ``>=`` bound."""
    pins: list[str] = []
    for requirement in package.requirements():
        if canonicalize_name(requirement.name) not in package.backend_libraries:
            continue
        lowest = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(lowest) != 1:
            raise ValueError(f"{package.name}: {requirement} has no single >= bound to test at")
        pins.append(f"{requirement.name}=={lowest[0]}")
    return pins


# The packages built on redis-py. `tests` runs them on the newest release their range
# allows (uv resolves to the highest); this session on the oldest, so both ends are tested.
REDIS_PACKAGES = [pkg.name for pkg in ADD_ONS if "redis" in pkg.backend_libraries]


@nox.session
@nox.parametrize("package", REDIS_PACKAGES)
def tests_oldest_redis(session: nox.Session, package: str) -> None:
    """Run a Redis driver's tests with redis-py (and walrus) at the lowest versions it admits."""
    pkg = PACKAGES[package]
    pins = lower_bounds(pkg)
    session.install(*local_install_args(pkg, "test"), *pins)
    session.log(f"{package} at the bottom of its range: {', '.join(pins)}")
    with session.chdir(session.create_tmp()):
        session.run("pytest", str(pkg.folder / "tests"), *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Run tests/integration against every package at once, each with its `test` extra."""
    args: list[str] = []
    for pkg in PACKAGES.values():
        args += local_install_args(pkg, "test")
    # hypothesis drives the configuration fuzzing in tests/integration/test_config_fuzz.py.
    session.install(*args, "hypothesis")
    # From a folder outside the repo, as in `tests`, so the installed packages are imported.
    with session.chdir(session.create_tmp()):
        session.run("pytest", str(ROOT / "tests" / "integration"), *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff's lint rules and formatting on the whole tree, then the import contracts of
    .importlinter: add-ons use opa's public surface only, the core knows no driver, the
    core's layers keep their direction."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    args: list[str] = []
    for pkg in PACKAGES.values():
        args += [str(pkg.folder), "--reinstall-package", pkg.name]
    session.install(IMPORT_LINTER, *args)
    check_lint_config_names(session)
    copies = Path(session.create_tmp()) / "lint-copies"
    write_lint_copies(copies)
    session.run("lint-imports", str(LINT_CONFIG), env={"PYTHONPATH": str(copies)})


def check_lint_config_names(session: nox.Session) -> None:
    """Fail, naming it, when an add-on package is missing from .importlinter's lists."""
    config = configparser.ConfigParser()
    config.read(LINT_CONFIG)
    for section, option in LINT_PACKAGE_LISTS:
        listed = set(config[section][option].split())
        missing = sorted(pkg.import_name for pkg in ADD_ONS if pkg.import_name not in listed)
        if missing:
            session.error(f"{LINT_CONFIG.name}: add {', '.join(missing)} to [{section}] {option}")


def write_lint_copies(folder: Path) -> None:
    """Copy what is no package into packages import-linter can read: each example folder as
    opa_lint_examples.<name>, each add-on's tests as opa_lint_tests.<import name>."""
    shutil.rmtree(folder, ignore_errors=True)
    sources = {
        f"opa_lint_examples/{as_identifier(example.name)}": example
        for example in sorted((ROOT / "examples").iterdir())
        if example.is_dir()
    }
    for pkg in ADD_ONS:
        sources[f"opa_lint_tests/{pkg.import_name}"] = pkg.folder / "tests"
    for target, source in sources.items():
        for path in source.rglob("*.py"):
            parts = [as_identifier(part) for part in path.relative_to(source).parent.parts]
            copy = folder.joinpath(target, *parts, path.name)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    for directory in [folder, *folder.rglob("*")]:
        if directory.is_dir() and directory != folder:
            (directory / "__init__.py").touch()


def as_identifier(name: str) -> str:
    """A folder name as a Python package name (examples/celery-task -> celery_task)."""
    return name.replace("-", "_")


@nox.session
@nox.parametrize("package", list(PACKAGES))
def typecheck(session: nox.Session, package: str) -> None:
    """mypy --strict (from the root pyproject.toml) on one package's source."""
    pkg = PACKAGES[package]
    session.install(MYPY, *local_install_args(pkg, "test"))
    # MYPYPATH makes mypy read src/ for this package, and site-packages for everything else.
    session.run("mypy", "-p", pkg.import_name, env={"MYPYPATH": str(pkg.folder / "src")})


@nox.session
def build(session: nox.Session) -> None:
    """Build all wheels and sdists into dist/; check each installs without others' backends."""
    shutil.rmtree(DIST, ignore_errors=True)
    for pkg in PACKAGES.values():
        session.run("uv", "build", "--quiet", "--out-dir", str(DIST), str(pkg.folder))
        check_wheel_is_typed(session, pkg)

    check_installs_alone(session, [CORE])
    for add_on in ADD_ONS:
        check_installs_alone(session, [CORE, add_on.name])
    for pkg in PACKAGES.values():
        if OTEL in pkg.extras:
            check_installs_alone(session, sorted({CORE, pkg.name}), extra=OTEL)


def all_backend_libraries() -> set[str]:
    """The fixed list above and every backend library a package of the monorepo needs."""
    names: set[str] = {canonicalize_name(name) for name in BACKEND_LIBRARIES}
    for add_on in ADD_ONS:
        names |= add_on.backend_libraries
    return names


def wheel_for(session: nox.Session, name: str) -> Path:
    wheels = sorted(DIST.glob(f"{name.replace('-', '_')}-*.whl"))
    if len(wheels) != 1:
        session.error(f"expected one wheel of {name} in {DIST}, found {len(wheels)}")
    return wheels[0]


def check_wheel_is_typed(session: nox.Session, pkg: Package) -> None:
    """A wheel without py.typed would hide our type hints from users' mypy."""
    with zipfile.ZipFile(wheel_for(session, pkg.name)) as wheel:
        if f"{pkg.import_name}/py.typed" not in wheel.namelist():
            session.error(f"the wheel of {pkg.name} has no {pkg.import_name}/py.typed")


def check_installs_alone(session: nox.Session, names: list[str], extra: str = "") -> None:
    """Install the wheels of `names` (each with `extra`, when it has it) into an empty venv;
    fail when a backend library or an OpenTelemetry distribution that none of them asks for
    came with them, or one they ask for did not.

    The monorepo packages they need come from the other wheels in dist/. Their own backend
    libraries, those of the monorepo packages they need, what `extra` names, and what those
    need in turn are allowed (walrus brings redis); any other backend library came from
    where it must not, opa-core first of all.
    """
    venv = Path(session.create_tmp()) / ("only-" + "+".join(names) + (f"-{extra}" if extra else ""))
    shutil.rmtree(venv, ignore_errors=True)
    python = str(venv / "bin" / "python")
    wheels = [
        f"{wheel_for(session, name)}[{extra}]"
        if extra in PACKAGES[name].extras
        else str(wheel_for(session, name))
        for name in names
    ]
    session.run("uv", "venv", "--quiet", "--python", session_python(session), str(venv))
    session.run(
        "uv", "pip", "install", "--quiet", "--python", python, "--find-links", str(DIST), *wheels
    )
    requires = installed_requirements(session, python)
    own: set[str] = set()
    for name in names:
        asked = [extra] if extra in PACKAGES[name].extras else []
        for needed, extras in local_closure(PACKAGES[name], asked).items():
            own |= PACKAGES[needed].backend_libraries | extra_libraries(PACKAGES[needed], extras)
    missing = sorted(own - set(requires))
    if missing:
        session.error(f"installing {' + '.join(names)} did not install {', '.join(missing)}")
    allowed = dependency_closure(own, requires)
    # OpenTelemetry that the packages need without any extra (FastAPI's own telemetry needs
    # opentelemetry-api) is theirs; any other came with an extra that was not asked for.
    base = dependency_closure(set(names), requires)
    tracing = {name for name in requires if name.startswith("opentelemetry")} - base
    forbidden = all_backend_libraries() | tracing
    pulled = sorted((forbidden - allowed) & set(requires))
    label = " + ".join(f"{name}[{extra}]" if extra else name for name in names)
    if pulled:
        session.error(f"installing {label} also installed {', '.join(pulled)}")
    brought = f"installs {', '.join(sorted(own))} and" if own else "installs"
    without = sorted(forbidden - allowed) + (
        [] if extra else ["OpenTelemetry's SDK or any instrumentation"]
    )
    session.log(f"{label} {brought} none of {', '.join(without)}")


def extra_libraries(package: Package, extras: Iterable[str]) -> set[str]:
    """What the named extras of *package* add besides the monorepo's own packages."""
    added: set[str] = set()
    for extra in extras:
        added |= {
            canonicalize_name(Requirement(text).name) for text in package.extras.get(extra, ())
        }
    return added - set(PACKAGES)


def installed_requirements(session: nox.Session, python: str) -> dict[str, list[str]]:
    """Every distribution installed for `python`, with the requirements it declares."""
    script = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.requires or [] for d in m.distributions()}))"
    )
    output = session.run(python, "-c", script, silent=True, external=True)
    assert isinstance(output, str)
    listing: dict[str, list[str]] = json.loads(output)
    return {canonicalize_name(name): reqs for name, reqs in listing.items()}


def dependency_closure(names: set[str], requires: dict[str, list[str]]) -> set[str]:
    """`names` and everything they need, transitively, among what is installed."""
    closure: set[str] = set()
    pending = [name for name in names if name in requires]
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        for text in requires[name]:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            needed = canonicalize_name(requirement.name)
            if needed in requires:
                pending.append(needed)
    return closure


def session_python(session: nox.Session) -> str:
    """The session's own interpreter, so the scratch venvs match the Python under test."""
    return str(Path(session.bin) / "python")


# The extras of what the benchmarks switch on: bench_metrics.py (METRICS), bench_tracing.py.
BENCH_EXTRAS = ("metrics", OTEL)


@nox.session
def bench(session: nox.Session) -> None:
    """Run benchmarks/run.py against opa-core and every driver; arguments after -- go to it."""
    script = ROOT / "benchmarks" / "run.py"
    args: list[str] = []
    for pkg in PACKAGES.values():
        extras = ",".join(extra for extra in BENCH_EXTRAS if extra in pkg.extras)
        folder = f"{pkg.folder}[{extras}]" if extras else str(pkg.folder)
        args += [folder, "--reinstall-package", pkg.name]
    # uvicorn serves the measured apps, httpx is the MongoDB benchmark's client, and
    # nx-27017 is its server when OPA_TEST_MONGODB_URL is unset. wrk gives the HTTP load when
    # it is on PATH; fastapi-plugins gets a uv environment of its own under .bench/, made by
    # the uv installed here (the session's bin is on PATH). asyncpg is the SQL benchmark's
    # DB-API (an extra of opa-driver-sqlalchemy).
    session.install(*args, "uvicorn", "httpx", "nx-27017", "asyncpg>=0.29,<1", "uv")
    session.run("python", str(script), *session.posargs)


# The documentation site's theme, bounded to one major release.
MKDOCS_MATERIAL = "mkdocs-material>=9.5,<10"


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ with `mkdocs build --strict`.

    Every package is installed from its folder, because docs/hooks/driver_options.py renders
    the driver options reference from the drivers' own option models as the site builds.
    """
    args: list[str] = []
    for pkg in PACKAGES.values():
        args += [str(pkg.folder), "--reinstall-package", pkg.name]
    session.install(MKDOCS_MATERIAL, *args)
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--config-file",
        str(ROOT / "mkdocs.yml"),
        "--site-dir",
        str(ROOT / "site"),
        *session.posargs,
    )
