"""Idempotency-Key on POST /api/v1/jobs and POST /api/v1/predict: a retried submit returns the original
job and answer without new work; the same key with another body is a 409; concurrent duplicates make one job."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import Stack, digit_png, make_zip, wait_job

KEY = "Idempotency-Key"


def zip_of(mnist_test, start: int, n: int = 4) -> bytes:
    x, _ = mnist_test
    return make_zip({f"d{i}.png": digit_png(x[i]) for i in range(start, start + n)})


def post_job(base: str, body: bytes, key: str | None, headers: dict | None = None, **form) -> requests.Response:
    return requests.post(f"{base}/api/v1/jobs", files={"file": ("digits.zip", body)}, data=form,
                         headers={**({KEY: key} if key else {}), **(headers or {})}, timeout=60)


def listed(base: str, headers: dict | None = None) -> list[str]:
    return [j["id"] for j in requests.get(f"{base}/api/v1/jobs?limit=100", headers=headers, timeout=10).json()["items"]]


def test_a_retried_submit_returns_the_original_job(api, mnist_test):
    body = zip_of(mnist_test, 0)
    first = post_job(api, body, "retry-1")
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    done = wait_job(api, first.json()["id"])
    again = post_job(api, body, "retry-1")  # a new multipart boundary, the same file: the same request
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json()["status"] == "succeeded" and again.json()["done"] == done["done"] == 4
    assert listed(api) == [first.json()["id"]]  # no second job
    other = post_job(api, body, None)  # without a key the same body is a new job
    assert other.json()["id"] != first.json()["id"]


def test_the_same_key_with_another_body_is_409(api, mnist_test):
    assert post_job(api, zip_of(mnist_test, 0), "k-2").status_code == 202
    for body, form in [(zip_of(mnist_test, 10), {}), (zip_of(mnist_test, 0), {"tag": "another form field"})]:
        r = post_job(api, body, "k-2", **form)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "idempotency_conflict"
    assert len(listed(api)) == 1


def test_concurrent_duplicates_create_one_job(api, mnist_test):
    body = zip_of(mnist_test, 20, n=50)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_job(api, body, "parallel-3"), range(8)))
    assert [r.status_code for r in answers] == [202] * 8, [r.text for r in answers]
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in answers) == 1  # one did the work
    assert listed(api) == list(ids)
    assert wait_job(api, ids.pop())["done"] == 50


def test_a_retried_prediction_returns_the_original_answer(api, mnist_test):
    x, y = mnist_test
    pixels = x[5].tolist()
    first = requests.post(f"{api}/api/v1/predict", json={"pixels": pixels}, headers={KEY: "draw-4"}, timeout=30)
    assert first.status_code == 200, first.text
    again = requests.post(f"{api}/api/v1/predict", json={"pixels": pixels}, headers={KEY: "draw-4"}, timeout=30)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and first.json()["digit"] == int(y[5])
    r = requests.post(f"{api}/api/v1/predict", json={"pixels": x[6].tolist()}, headers={KEY: "draw-4"}, timeout=30)
    assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_conflict"
    # multipart: the same file under the same key again is the same prediction
    png = {"image": ("seven.png", digit_png(x[0]))}
    a = requests.post(f"{api}/api/v1/predict", files=png, headers={KEY: "draw-5"}, timeout=30).json()
    b = requests.post(f"{api}/api/v1/predict", files=png, headers={KEY: "draw-5"}, timeout=30).json()
    assert a["job_id"] == b["job_id"]
    # keys are per route: the drawing's key does not collide with a job's
    assert post_job(api, zip_of(mnist_test, 0), "draw-5").status_code == 202


def test_a_submit_that_failed_can_be_retried_with_its_key(api, mnist_test):
    broken = b"PK\x03\x04 not really a zip"
    for _ in range(2):  # the same bad request, the same clear error: nothing was kept for the key
        r = post_job(api, broken, "bad-6")
        assert r.status_code == 400 or r.status_code == 422, r.text
        assert r.json()["error"]["code"] != "idempotency_conflict"
    r = post_job(api, zip_of(mnist_test, 0), "bad-6")  # fixed and retried with the same key
    assert r.status_code == 202, r.text


def test_a_deleted_jobs_key_is_404_not_a_new_job(api, mnist_test):
    body = zip_of(mnist_test, 0)
    job = post_job(api, body, "gone-7").json()
    wait_job(api, job["id"])
    assert requests.delete(f"{api}/api/v1/jobs/{job['id']}", timeout=10).status_code == 204
    r = post_job(api, body, "gone-7")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert listed(api) == []


@pytest.mark.parametrize("key", ["x" * 256, "has space", "tab\there", "ünïcode", ""])
def test_malformed_keys_are_400(api, mnist_test, key):
    r = post_job(api, zip_of(mnist_test, 0), None, headers={KEY: key.encode("utf-8").decode("latin-1")})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_idempotency_key"
    r = requests.post(f"{api}/api/v1/predict", json={"pixels": mnist_test[0][0].tolist()},
                      headers={KEY: key.encode("utf-8").decode("latin-1")}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_idempotency_key"
    assert listed(api) == []


@pytest.fixture(scope="module")
def two_clients(stack, redis_url, tmp_path_factory) -> str:
    web = Stack({"REDIS_URL": redis_url, "RATE_LIMIT": "", "API_KEYS": "alice:idem-a-1,bob:idem-b-2"},
                tmp_path_factory.mktemp("idem-keys-web"))
    web.start("web")
    web.wait_ready()
    yield web.url
    web.stop_all()


def test_keys_are_per_client(two_clients, redis_client, mnist_test):
    body = zip_of(mnist_test, 0)
    alice, bob = {"Authorization": "Bearer idem-a-1"}, {"Authorization": "Bearer idem-b-2"}
    a = post_job(two_clients, body, "shared-8", alice).json()
    b = post_job(two_clients, body, "shared-8", bob)
    assert b.status_code == 202 and "Idempotent-Replayed" not in b.headers
    assert b.json()["id"] != a["id"]
    # bob reusing the key for another body conflicts only with his own request
    assert post_job(two_clients, zip_of(mnist_test, 9), "shared-8", bob).status_code == 409
    assert listed(two_clients, alice) == [a["id"]] and listed(two_clients, bob) == [b.json()["id"]]
