"""examples/redis over HTTP against a real Redis: counters through both drivers, a bloom filter.

It lives here, not with redis-walrus, because it needs both drivers: this package's test
extra installs redis-walrus beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opa.testing import build_app

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "redis"
COUNTERS = ["/counter-sync", "/counter-async"]


@pytest.fixture
def client(redis_url: str, redis_prefix: str) -> Iterator[TestClient]:
    """The example as its settings folder configures it, on the test Redis and key prefix."""
    urls = {name: {"OPTS": {"URL": redis_url}} for name in ("WALRUS", "AIOREDIS")}
    settings = {
        "PLUGIN_PATHS": [str(EXAMPLE)],
        "EXAMPLE_KEY_PREFIX": redis_prefix,
        # Merged into the example's components: only the URLs change.
        "OPTIONAL_COMPONENTS": {"dynaconf_merge": True, **urls},
    }
    with TestClient(build_app(settings, settings_dir=EXAMPLE / "settings")) as test_client:
        yield test_client


@pytest.mark.parametrize("path", COUNTERS)
def test_a_counter_counts_per_key(client: TestClient, path: str) -> None:
    """Each call adds one to the named counter; without a key the default counter counts."""
    assert client.get(path, params={"key": "a"}).json() == 1
    assert client.get(path, params={"key": "a"}).json() == 2
    assert client.get(path, params={"key": "b"}).json() == 1
    assert client.get(path).json() == 1


def test_both_drivers_count_the_same_key(client: TestClient) -> None:
    """The sync and async routes increment one and the same Redis key."""
    assert client.get("/counter-sync", params={"key": "shared"}).json() == 1
    assert client.get("/counter-async", params={"key": "shared"}).json() == 2


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", COUNTERS)
def test_concurrent_increments_over_http_are_all_counted(client: TestClient, path: str) -> None:
    """300 requests from 30 threads at once read back exactly 300: no increment is lost."""
    with ThreadPoolExecutor(max_workers=30) as threads:
        statuses = list(threads.map(lambda _: client.get(path, params={"key": "n"}), range(300)))
    assert {response.status_code for response in statuses} == {200}
    assert client.get(path, params={"key": "n"}).json() == 301


@pytest.mark.parametrize("key", ["x" * 65, "", "two words", "a/b"])
@pytest.mark.parametrize("path", COUNTERS)
def test_bad_keys_are_refused(client: TestClient, path: str, key: str) -> None:
    """A key that is empty, longer than 64 characters or holds odd characters gets 422."""
    assert client.get(path, params={"key": key}).status_code == 422


def test_bloom_takes_words_from_the_query_json_and_text(client: TestClient) -> None:
    """Words posted in the query, a JSON body or a text body are all members afterwards."""
    assert client.post("/bloom", params={"string": ["apple", "pear"]}).json() == {"added": 2}
    assert client.post("/bloom", json=["plum"]).json() == {"added": 1}
    text = {"content-type": "text/plain"}
    assert client.post("/bloom", content="fig\nlime kiwi", headers=text).json() == {"added": 3}
    for word in ("apple", "pear", "plum", "fig", "lime", "kiwi"):
        assert client.get("/bloom", params={"string": word}).json() == {
            "string": word,
            "member": True,
        }
    assert client.get("/bloom", params={"string": "quince"}).json()["member"] is False


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {},
        {"json": {"words": ["apple"]}},
        {"json": ["apple", 3]},
        {"content": "{not json", "headers": {"content-type": "application/json"}},
        {"params": {"string": "x" * 101}},
        {"content": " ".join(["w"] * 1001), "headers": {"content-type": "text/plain"}},
    ],
)
def test_bad_bloom_input_is_refused(client: TestClient, request_kwargs: dict[str, object]) -> None:
    """No words, a JSON body that is not a list of strings, or oversized words get 422."""
    assert client.post("/bloom", **request_kwargs).status_code == 422


def test_bloom_membership_needs_a_word(client: TestClient) -> None:
    """Asking about no word, or a word past 100 characters, gets 422."""
    assert client.get("/bloom").status_code == 422
    assert client.get("/bloom", params={"string": "x" * 101}).status_code == 422
