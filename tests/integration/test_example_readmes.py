"""Each example's README, run as written: its commands start the example, its `curl` lines
get the answers the README shows. So a README cannot drift from what the example does.

How a README is read:

- a ```sh block with a line that runs `opa run` is a *run block*: each of its lines is a
  command of its own terminal (an `opa worker`, `opa run`...), from the repository root
  when the line names `examples/...`, else from the example's folder;
- a ```sh block with `curl` lines is a *curl block*: it runs as one bash script against
  every run block since the previous curl block (or the last run block), and its `# ...`
  lines are the answers, JSON values in order, where `"..."` stands for any value.

Only what keeps a test from meeting others on this machine's shared services changes: the
example runs in a copy of its folder, `opa run` listens on a port the kernel picks and
curl is pointed there, and the settings the README itself names for that purpose set
this run's own key prefix, queue names (`-Q`, `-n`), databases and service URLs, and the
components' start-up bound is raised for a loaded machine. Flower's line is left to
packages/opa-driver-celery/tests/test_flower.py, which runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from opa.testing import (
    LoggedProcess,
    ServiceUnavailable,
    bound_port,
    clean_environ,
    delete_keys,
    http_answers,
    skip_or_fail,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
OPA_RUN = re.compile(r"\bopa run\b")
START_TIMEOUT = 60.0
SCRIPT_TIMEOUT = 180.0
# Databases of our own on the shared Redis for the celery example's results and counter.
CELERY_BACKEND_DB, CELERY_STORE_DB = 12, 13


@dataclass
class Scenario:
    """One run block of a README and the curl block checked against it."""

    example: str
    index: int
    commands: list[str]
    script: str
    answers: list[Any]

    @property
    def id(self) -> str:
        return f"{self.example}-{self.index}"


def command_lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def answers_of(block: str, example: str) -> list[Any]:
    answers = []
    for line in block.splitlines():
        if line.startswith("# "):
            try:
                answers.append(json.loads(line[2:]))
            except json.JSONDecodeError:
                raise AssertionError(f"{example}: answer is not JSON: {line}") from None
    return answers


def scenarios_of(example: Path) -> list[Scenario]:
    """Every (run block, curl block) pair of the example's README."""
    text = (example / "README.md").read_text(encoding="utf-8")
    found: list[Scenario] = []
    pending: list[list[str]] = []
    last: list[list[str]] = []
    for block in SH_BLOCK.findall(text):
        lines = command_lines(block)
        if any(OPA_RUN.search(line) for line in lines):
            pending.append(lines)
        elif any("curl " in line for line in lines):
            runs, pending = pending or last, []
            assert runs, f"{example.name}: a curl block comes before any run command"
            last = runs
            for commands in runs:
                answers = answers_of(block, example.name)
                found.append(Scenario(example.name, len(found), commands, block, answers))
    assert not pending, f"{example.name}: a run command has no curl block after it"
    return found


SCENARIOS = [
    scenario
    for folder in sorted(EXAMPLES.iterdir())
    if (folder / "README.md").is_file()
    for scenario in scenarios_of(folder)
]


def matches(expected: Any, actual: Any) -> bool:
    """*actual* has the shape and values of *expected*, where "..." is any value."""
    if expected == "...":
        return True
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(matches(value, actual[key]) for key, value in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(type(expected) is type(actual) and expected == actual)


def json_values(text: str) -> list[Any]:
    """The JSON values printed one after another, each on its own line or lines."""
    decoder = json.JSONDecoder()
    values, position = [], 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        value, position = decoder.raw_decode(text, position)
        values.append(value)
    return values


def test_every_example_has_a_checked_curl_block() -> None:
    """Each example's README has at least one run command followed by curl lines with
    answers, so the test below covers every example."""
    examples = {p.name for p in EXAMPLES.iterdir() if (p / "README.md").is_file()}
    assert examples == {s.example for s in SCENARIOS}
    assert all(s.answers for s in SCENARIOS), [s.id for s in SCENARIOS if not s.answers]


@pytest.mark.parametrize(
    ("expected", "actual", "result"),
    [
        ({"id": "...", "n": 1}, {"id": "abc", "n": 1}, True),
        ({"id": "...", "n": 1}, {"id": "abc", "n": 2}, False),
        ({"id": "..."}, {"id": "abc", "extra": 1}, False),
        ([{"a": "..."}], [], False),
        (2.0, 2.0, True),
        (1, True, False),
    ],
)
def test_answers_match_with_dots_for_any_value(expected: Any, actual: Any, result: bool) -> None:
    """ "..." matches any value; keys, lengths, types and other values must be equal."""
    assert matches(expected, actual) is result


@dataclass
class Isolation:
    """What keeps one run of an example to itself: variables and a name prefix."""

    env: dict[str, str]
    prefix: str = ""


def redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


@contextmanager
def isolation(example: str, request: pytest.FixtureRequest) -> Iterator[Isolation]:
    """The variables that point *example* at this machine's services under names of this
    run's own, and the removal of what it wrote."""
    run_id = uuid.uuid4().hex[:12]
    prefix = f"opa-readme-{run_id}:"
    components = "OPA_OPTIONAL_COMPONENTS__"
    with ExitStack() as stack:
        env: dict[str, str] = {}
        redis_urls: list[str] = []
        if example in ("redis", "background-task"):
            redis_url = request.getfixturevalue("redis_url")
            env[f"{components}WALRUS__OPTS__URL"] = redis_url
            if example == "redis":
                env[f"{components}AIOREDIS__OPTS__URL"] = redis_url
            env["OPA_EXAMPLE_KEY_PREFIX" if example == "redis" else "OPA_TASKS_KEY_PREFIX"] = prefix
            redis_urls.append(redis_url)
        if example == "celery-task":
            redis_url = request.getfixturevalue("redis_url")
            rabbitmq_url = request.getfixturevalue("rabbitmq_url")
            env["OPA_EXAMPLE_NAMESPACE"] = prefix
            env[f"{components}CELERY__OPTS__BROKER_URL"] = rabbitmq_url
            env[f"{components}CELERY__OPTS__BACKEND_URL"] = redis_db(redis_url, CELERY_BACKEND_DB)
            env[f"{components}CELERY__OPTS__SETTINGS"] = (
                f'{{result_backend_transport_options = {{global_keyprefix = "{prefix}"}}}}'
            )
            env[f"{components}WALRUS__OPTS__URL"] = redis_db(redis_url, CELERY_STORE_DB)
            redis_urls += [
                redis_db(redis_url, CELERY_BACKEND_DB),
                redis_db(redis_url, CELERY_STORE_DB),
            ]
            stack.callback(delete_queues, rabbitmq_url, [f"{prefix}counter", f"{prefix}math"])
        if example == "mongodb":
            from opa_mongodb_common.testing import private_database

            url = stack.enter_context(private_database(request.getfixturevalue("mongodb_url")))
            env[f"{components}MONGODB__OPTS__URL"] = url
        for url in redis_urls:
            stack.callback(delete_redis_keys, url, prefix)
        yield Isolation(env, prefix)


def delete_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        delete_keys(client, prefix)
    finally:
        client.close()


def delete_queues(broker: str, queues: list[str]) -> None:
    from kombu import Connection

    with Connection(broker) as connection:
        channel = connection.default_channel
        for queue in queues:
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


def as_run_here(line: str, prefix: str, run_id: str) -> str:
    """The README's line, with opa run on a port of the kernel's choosing and, for a
    worker, this run's queue and node names."""
    line = OPA_RUN.sub("opa run --host 127.0.0.1 --port 0 --no-reload", line)
    if prefix:
        line = re.sub(
            r"-Q (\S+)", lambda m: "-Q " + ",".join(prefix + q for q in m[1].split(",")), line
        )
        line = re.sub(r"-n (\w+)@", lambda m: f"-n {m[1]}-{run_id}@", line)
    return line


def tools_or_skip() -> None:
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is not installed; the README commands use it")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_readme_commands_answer_as_the_readme_shows(
    scenario: Scenario, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The README's commands start the example, and its curl lines print its answers."""
    tools_or_skip()
    shutil.copytree(
        EXAMPLES / scenario.example,
        tmp_path / "examples" / scenario.example,
        ignore=shutil.ignore_patterns("__pycache__", "*.sqlite"),
    )
    here = tmp_path / "examples" / scenario.example
    env = clean_environ()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # A loaded test machine may take longer than the default 10 s to import and connect
    # a backend; that is no fault of the README, so the bound is generous here.
    env["OPA_COMPONENT_TIMEOUT"] = "60"
    run_id = uuid.uuid4().hex[:8]
    with isolation(scenario.example, request) as isolated, ExitStack() as processes:
        env.update(isolated.env)
        server: LoggedProcess | None = None
        workers: list[LoggedProcess] = []
        for number, line in enumerate(scenario.commands):
            if "flower" in line:
                continue
            cwd = tmp_path if "examples/" in line else here
            command = ["bash", "-c", as_run_here(line, isolated.prefix, run_id)]
            log = tmp_path / f"command-{number}.log"
            process = processes.enter_context(LoggedProcess(command, log, env=env, cwd=cwd))
            if OPA_RUN.search(line):
                server = process
            if "opa worker" in line:
                workers.append(process)
        assert server is not None, f"{scenario.id}: no opa run line"
        try:
            url = f"http://127.0.0.1:{bound_port(server.popen, f'opa run of {scenario.id}', 60)}"
        except ServiceUnavailable as exc:
            raise AssertionError(f"{exc}:\n{server.tail()}") from None
        wait_for(lambda: http_answers(f"{url}/openapi.json"), START_TIMEOUT, "opa run answering")
        for worker in workers:
            wait_for(lambda w=worker: " ready." in w.output(), START_TIMEOUT, "worker ready")
        # Each curl's output on a line of its own, so that answers 1 then 2 never read as 12.
        script = 'curl() { command curl "$@"; echo; }\n' + scenario.script.replace(
            "localhost:8000", url.removeprefix("http://")
        )
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=here,
            env=env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
        )
        logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("*.log"))
        assert done.returncode == 0, f"{done.stderr}\n{logs}"
        printed = json_values(done.stdout)
        assert len(printed) == len(scenario.answers), f"{done.stdout}\n{logs}"
        for shown, answer in zip(scenario.answers, printed, strict=True):
            assert matches(shown, answer), f"README shows {shown}, the example printed {answer}"
