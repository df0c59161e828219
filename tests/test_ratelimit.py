"""The per-client rate limit (Flask-Limiter, counters in Redis): 429 `rate_limited` with Retry-After."""

from __future__ import annotations

import uuid

import pytest
import redis
import requests

from tests.conftest import Stack

LIMIT = 5
UNKNOWN_JOB = "/api/v1/jobs/" + "0" * 32  # cheap: every answer is a 404 until the limit is reached


@pytest.fixture(scope="module")
def limited(stack, redis_url, tmp_path_factory) -> str:
    """A second web process with RATE_LIMIT="5 per minute"; same Redis, same workers."""
    web = Stack({"REDIS_URL": redis_url, "RATE_LIMIT": f"{LIMIT} per minute"}, tmp_path_factory.mktemp("limited-web"))
    web.start("web")
    web.wait_ready()
    yield web.url
    web.stop_all()


@pytest.fixture
def fresh(redis_url):
    """No counters left from an earlier test (Flask-Limiter's keys look like LIMITS:LIMITER/df-limit/...)."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter("LIMITS:*df-limit*", count=1000))
    if keys:
        client.delete(*keys)


def _assert_limited(r: requests.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json() == {"error": {"code": "rate_limited", "message": r.json()["error"]["message"]}}
    assert r.json()["error"]["message"]
    assert 0 < int(r.headers["Retry-After"]) <= 60


def test_the_sixth_request_in_a_minute_is_429_with_retry_after(limited, fresh):
    for _ in range(LIMIT):
        r = requests.get(limited + UNKNOWN_JOB, timeout=10)
        assert r.status_code == 404, r.text
    _assert_limited(requests.get(limited + UNKNOWN_JOB, timeout=10))
    _assert_limited(requests.post(limited + "/api/v1/predict", json={"pixels": []}, timeout=10))
    # the limit is on the API only: health checks, the UI and the OpenAPI document still answer
    assert requests.get(limited + "/healthz", timeout=10).status_code == 200
    assert requests.get(limited + "/api/openapi.json", timeout=10).status_code == 200


def test_made_up_authorization_headers_do_not_escape_the_limit(limited, fresh):
    for _ in range(LIMIT):
        r = requests.get(limited + UNKNOWN_JOB, headers={"Authorization": f"Bearer {uuid.uuid4().hex}"}, timeout=10)
        assert r.status_code == 404, r.text
    _assert_limited(requests.get(limited + UNKNOWN_JOB, headers={"Authorization": f"Bearer {uuid.uuid4().hex}"},
                                 timeout=10))


@pytest.fixture(scope="module")
def limited_keys(stack, redis_url, tmp_path_factory) -> str:
    """A web process with two client keys and RATE_LIMIT="5 per minute"; same Redis, same workers."""
    web = Stack({"REDIS_URL": redis_url, "RATE_LIMIT": f"{LIMIT} per minute", "API_KEYS": "alice:rl-a-1,bob:rl-b-2"},
                tmp_path_factory.mktemp("limited-keys-web"))
    web.start("web")
    web.wait_ready()
    yield web.url
    web.stop_all()


def test_each_key_has_its_own_budget(limited_keys, fresh):
    alice, bob = {"Authorization": "Bearer rl-a-1"}, {"Authorization": "Bearer rl-b-2"}
    for _ in range(LIMIT):
        assert requests.get(limited_keys + UNKNOWN_JOB, headers=alice, timeout=10).status_code == 404
    _assert_limited(requests.get(limited_keys + UNKNOWN_JOB, headers=alice, timeout=10))
    # the same address with another key is not limited by alice's calls
    for _ in range(LIMIT):
        assert requests.get(limited_keys + UNKNOWN_JOB, headers=bob, timeout=10).status_code == 404
    _assert_limited(requests.get(limited_keys + UNKNOWN_JOB, headers=bob, timeout=10))
