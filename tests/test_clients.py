"""A key per client (API_KEYS): each job belongs to the key that created it, is 404 to every other key,
and GET /api/v1/jobs lists the caller's own, newest first, paged. API_TOKEN keeps working as one key."""

from __future__ import annotations

import pytest
import requests

from digitflow.settings import Settings
from tests.conftest import Stack, digit_png, make_zip, wait_job
from web.auth import Keys

ALICE, BOB, LEGACY = "alice-token-1a2b", "bob-token-3c4d", "legacy-token-5e6f"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def keyed(stack, redis_url, tmp_path_factory) -> str:
    """A second web process with two client keys and the single API_TOKEN; same Redis, same workers."""
    web = Stack({"REDIS_URL": redis_url, "RATE_LIMIT": "", "API_KEYS": f"alice:{ALICE}, bob:{BOB}",
                 "API_TOKEN": LEGACY}, tmp_path_factory.mktemp("keyed-web"))
    web.start("web")
    web.wait_ready()
    yield web.url
    web.stop_all()


def submit(base: str, token: str, mnist_test, n: int = 3) -> dict:
    x, _ = mnist_test
    files = {f"d{i}.png": digit_png(x[i]) for i in range(n)}
    r = requests.post(f"{base}/api/v1/jobs", files={"file": ("a.zip", make_zip(files))}, headers=auth(token), timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def test_without_a_key_every_api_call_is_401(keyed, redis_client):
    for method, path in [("get", "/api/v1/jobs"), ("post", "/api/v1/jobs"), ("post", "/api/v1/predict"),
                         ("get", "/api/v1/models")]:
        r = requests.request(method, keyed + path, timeout=10)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "unauthorized"
    r = requests.get(keyed + "/api/v1/jobs", headers=auth("alice-token-1a2"), timeout=10)  # a prefix of a key
    assert r.status_code == 401


def test_a_job_is_404_to_every_other_key(keyed, redis_client, mnist_test):
    job = submit(keyed, ALICE, mnist_test)
    assert job["client"] == "alice"
    assert wait_job(keyed, job["id"], headers=auth(ALICE))["status"] == "succeeded"
    jid = job["id"]
    reads = [f"/api/v1/jobs/{jid}", f"/api/v1/jobs/{jid}/results", f"/api/v1/jobs/{jid}/results.csv",
             f"/api/v1/jobs/{jid}/results/0.png", f"/api/v1/jobs/{jid}/results/0/original",
             f"/api/v1/jobs/{jid}/labelled.zip"]
    for token in (BOB, LEGACY):
        for path in reads:
            r = requests.get(keyed + path, headers=auth(token), timeout=10)
            assert r.status_code == 404, (token, path, r.status_code)
            assert r.json()["error"]["code"] == "not_found"
        r = requests.put(f"{keyed}/api/v1/jobs/{jid}/results/0/label", json={"label": 3}, headers=auth(token), timeout=10)
        assert r.status_code == 404
        assert requests.delete(f"{keyed}/api/v1/jobs/{jid}", headers=auth(token), timeout=10).status_code == 404
    for path in reads:  # the owner still has all of it: the other keys changed nothing
        assert requests.get(keyed + path, headers=auth(ALICE), timeout=10).status_code == 200, path
    assert requests.get(f"{keyed}/api/v1/jobs/{jid}", headers=auth(ALICE), timeout=10).json()["reviewed"] == 0


def test_a_prediction_belongs_to_its_key_too(keyed, redis_client, mnist_test):
    x, y = mnist_test
    r = requests.post(f"{keyed}/api/v1/predict", files={"image": ("d.png", digit_png(x[0]))}, headers=auth(BOB), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["digit"] == int(y[0])
    jid = r.json()["job_id"]
    assert requests.get(f"{keyed}/api/v1/jobs/{jid}", headers=auth(ALICE), timeout=10).status_code == 404
    assert requests.get(f"{keyed}/api/v1/jobs/{jid}", headers=auth(BOB), timeout=10).status_code == 200


def test_the_job_list_is_the_callers_own_newest_first_and_paged(keyed, redis_client, mnist_test):
    mine = [submit(keyed, ALICE, mnist_test, n=1)["id"] for _ in range(3)]
    theirs = submit(keyed, BOB, mnist_test, n=1)["id"]
    legacy = submit(keyed, LEGACY, mnist_test, n=1)
    assert legacy["client"] == "default"  # API_TOKEN is one more key
    page = requests.get(f"{keyed}/api/v1/jobs?limit=2", headers=auth(ALICE), timeout=10).json()
    assert [j["id"] for j in page["items"]] == mine[::-1][:2]
    assert page["total"] == 3
    rest = requests.get(keyed + page["next"], headers=auth(ALICE), timeout=10).json()
    assert [j["id"] for j in rest["items"]] == [mine[0]] and rest["next"] is None
    assert all(j["links"]["self"] == f"/api/v1/jobs/{j['id']}" for j in page["items"] + rest["items"])
    bobs = requests.get(f"{keyed}/api/v1/jobs", headers=auth(BOB), timeout=10).json()
    assert [j["id"] for j in bobs["items"]] == [theirs]
    # a deleted job leaves the list
    wait_job(keyed, mine[1], headers=auth(ALICE))
    assert requests.delete(f"{keyed}/api/v1/jobs/{mine[1]}", headers=auth(ALICE), timeout=10).status_code == 204
    left = requests.get(f"{keyed}/api/v1/jobs", headers=auth(ALICE), timeout=10).json()
    assert [j["id"] for j in left["items"]] == [mine[2], mine[0]] and left["total"] == 2


def test_the_list_checks_its_paging_arguments(keyed, redis_client):
    for query in ("limit=0", "limit=101", "offset=-1", "limit=ten"):
        r = requests.get(f"{keyed}/api/v1/jobs?{query}", headers=auth(ALICE), timeout=10)
        assert r.status_code == 400, query
        assert r.json()["error"]["code"] == "bad_request"


def test_the_login_page_takes_any_key(keyed, redis_client):
    for token in (BOB, LEGACY):
        s = requests.Session()
        assert s.get(keyed + "/upload", timeout=10, allow_redirects=False).status_code == 302
        r = s.post(keyed + "/login?next=/upload", data={"token": token}, timeout=10, allow_redirects=False)
        assert r.status_code == 302 and r.headers["Location"] == "/upload"
        assert s.get(keyed + "/upload", timeout=10, allow_redirects=False).status_code == 200
        # the page's session now calls the API as that key
        assert s.get(keyed + "/api/v1/jobs", timeout=10).status_code == 200
    r = requests.post(keyed + "/login", data={"token": "not-a-key"}, timeout=10, allow_redirects=False)
    assert r.status_code == 401


@pytest.mark.parametrize("value, problem", [
    ("alice", "is not `name:token`"),
    ("alice:", "is not `name:token`"),
    ("al ice:tok", "is not `name:token`"),
    ("alice:one,alice:two", "given twice"),
    ("alice:same,bob:same", "share a token"),
])
def test_a_malformed_api_keys_setting_is_refused_with_a_clear_message(value, problem):
    with pytest.raises(ValueError, match=problem):
        Keys.from_settings(Settings(api_keys=value))


def test_api_keys_parse_into_names():
    keys = Keys.from_settings(Settings(api_keys=" alice:a-1 ,bob:b-2,", api_token="t-3"))
    assert (keys.client("a-1"), keys.client("b-2"), keys.client("t-3"), keys.client("a-")) == ("alice", "bob", "default", None)
    assert not Keys.from_settings(Settings()).required
