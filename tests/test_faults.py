"""Faults with real processes: killed pool processes and workers, Redis and web restarts, Redis down."""

from __future__ import annotations

import json
import re
import signal
import time

import psutil
import pytest
import redis
import requests
from stack import RedisServer, Stack

from tests.conftest import all_results, digit_png, make_zip, wait_job
from web.ingest import chunk_plan
from worker.reconcile import chunk_of

pytestmark = pytest.mark.slow
N_IMAGES = 6000


@pytest.fixture(scope="module")
def big_zip(mnist_test) -> bytes:
    x, _ = mnist_test
    return make_zip({f"{i:05d}.png": digit_png(x[i]) for i in range(N_IMAGES)})


@pytest.fixture
def private(tmp_path):
    """A stack of its own (own Redis with append-only file) that a test may break; small chunks, short timeouts."""
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    env = {"REDIS_URL": server.url, "CHUNK_SIZE": "100", "VISIBILITY_TIMEOUT": "4", "RATE_LIMIT": "off",
           "TASK_TIME_LIMIT": "20", "RECONCILE_INTERVAL": "2"}  # lost chunks re-sent after 24 s without progress
    stack = Stack(env, tmp_path / "logs")
    yield server, stack
    stack.stop_all()
    server.stop()


def submit(base: str, data: bytes) -> str:
    r = requests.post(f"{base}/api/v1/jobs", files={"file": ("digits.zip", data, "application/zip")}, timeout=120)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def predictions(base: str, job_id: str) -> list[tuple[int, int | None, str | None]]:
    return [(it["index"], it["digit"], it["filename"]) for it in all_results(base, job_id)]


def progress(base: str, job_id: str) -> dict:
    return requests.get(f"{base}/api/v1/jobs/{job_id}", timeout=10).json()


def wait_progress(base: str, job_id: str, at_least: int, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = progress(base, job_id)
        if job["done"] >= at_least:
            return job
        time.sleep(0.02)
    raise AssertionError(f"no progress to {at_least}: {job}")


def pool_children(stack: Stack, name: str) -> list[psutil.Process]:
    return psutil.Process(stack.procs[name].pid).children()


def test_sigkill_pool_process_three_times_loses_nothing(private, big_zip):
    _, stack = private
    stack.start_all(workers=("bulk",))
    baseline_id = submit(stack.url, big_zip)
    assert wait_job(stack.url, baseline_id)["status"] == "succeeded"
    baseline = predictions(stack.url, baseline_id)

    job_id = submit(stack.url, big_zip)
    killed = 0
    for fraction in (0.1, 0.35, 0.6):
        wait_progress(stack.url, job_id, int(N_IMAGES * fraction))
        children = pool_children(stack, "bulk")
        assert children, "the bulk worker has no pool processes"
        assert progress(stack.url, job_id)["status"] == "running"  # the kill lands mid-job
        children[0].send_signal(signal.SIGKILL)
        killed += 1
        time.sleep(0.3)
    job = wait_job(stack.url, job_id, timeout=180)
    assert killed == 3
    assert job["status"] == "succeeded" and job["done"] == N_IMAGES and job["failed"] == 0
    assert predictions(stack.url, job_id) == baseline


def test_killing_the_whole_worker_and_starting_a_new_one_loses_nothing(private, big_zip):
    _, stack = private
    stack.start_all(workers=("bulk",))
    job_id = submit(stack.url, big_zip)
    wait_progress(stack.url, job_id, N_IMAGES // 5)
    stack.kill("bulk")  # main process and its pool, no warm shutdown
    assert progress(stack.url, job_id)["status"] == "running"
    stack.start("bulk2")
    job = wait_job(stack.url, job_id, timeout=180)
    assert job["status"] == "succeeded" and job["done"] == N_IMAGES and job["failed"] == 0
    items = predictions(stack.url, job_id)
    assert [i for i, _, _ in items] == list(range(N_IMAGES))
    assert all(d is not None for _, d, _ in items)


def test_two_workers_share_one_job(private, big_zip, redis_client):
    server, stack = private
    stack.start_all(workers=("bulk", "bulkb"))
    stack.wait_ready(workers=2)
    job_id = submit(stack.url, big_zip)
    job = wait_job(stack.url, job_id)
    assert job["status"] == "succeeded" and job["done"] == N_IMAGES
    import redis

    by = redis.Redis.from_url(server.url).hgetall(f"df:{{{job_id}}}:by")
    nodes = {v.decode().split("@")[0] for v in by.values()}
    assert nodes == {"bulk", "bulkb"}, nodes
    assert len(by) == len(chunk_plan(N_IMAGES, 100))  # one entry per chunk task


def test_redis_restart_during_a_job(private, big_zip):
    server, stack = private
    stack.start_all(workers=("bulk",))
    job_id = submit(stack.url, big_zip)
    wait_progress(stack.url, job_id, N_IMAGES // 5)
    server.stop()  # SIGTERM: Redis writes its append-only file and exits
    time.sleep(1)
    server.start()
    job = wait_job(stack.url, job_id, timeout=180)
    assert job["status"] == "succeeded" and job["done"] == N_IMAGES and job["failed"] == 0


def test_a_chunk_message_lost_by_the_broker_is_sent_again(private, big_zip):
    server, stack = private
    stack.env["TASK_TIME_LIMIT"] = "6"  # the scan waits VISIBILITY_TIMEOUT + TASK_TIME_LIMIT without progress
    stack.start_all(workers=("interactive",))  # nobody consumes the bulk queue yet
    job_id = submit(stack.url, big_zip)
    r = redis.Redis.from_url(server.url)
    lost = next(raw for raw in r.lrange("bulk", 0, -1) if chunk_of(json.loads(raw)) == (job_id, 7))
    assert r.lrem("bulk", 1, lost) == 1  # the message is gone, as when Redis dies between BRPOP and the unacked write
    stack.start("bulk")
    job = wait_job(stack.url, job_id, timeout=120)
    assert job["status"] == "succeeded" and job["done"] == N_IMAGES and job["failed"] == 0
    logs = "".join((stack.log_dir / f"{name}.log").read_text() for name in ("bulk", "interactive"))
    assert logs.count("re-sent 1 lost chunk task(s)") == 1  # whichever worker held the scan lock


def test_a_bulk_worker_counts_as_ready_only_once_it_takes_tasks(private):
    """/readyz must not count a bulk worker whose pool has loaded the model while its main process is still
    starting (mingle): a job sent then waited about a second for it, so the first job after a start was slow."""
    _, stack = private
    stack.start_all(workers=("bulk",))  # returns once /readyz counts the bulk worker
    assert re.search(r"bulk@\S+ ready\.", (stack.log_dir / "bulk.log").read_text())  # Celery's "consuming now"


def test_web_restart_during_a_job(private, big_zip):
    _, stack = private
    stack.start_all(workers=("bulk",))
    job_id = submit(stack.url, big_zip)
    stack.stop("web")
    stack.start("web")
    stack.wait_ready()
    job = wait_job(stack.url, job_id, timeout=180)
    assert job["status"] == "succeeded" and job["done"] == N_IMAGES
    assert len(all_results(stack.url, job_id)) == N_IMAGES


def test_redis_down_answers_503_quickly_and_recovers(private, mnist_test):
    server, stack = private
    stack.start_all(workers=("bulk", "interactive"))
    png = digit_png(mnist_test[0][0])
    assert requests.post(f"{stack.url}/api/v1/predict", files={"image": ("a.png", png)}, timeout=30).status_code == 200
    server.stop()
    for method, path, kw in [("post", "/api/v1/predict", {"files": {"image": ("a.png", png)}}),
                             ("get", "/api/v1/jobs/" + "a" * 32, {}),
                             ("post", "/api/v1/jobs", {"files": {"file": ("a.zip", make_zip({"a.png": png}))}})]:
        t = time.time()
        r = getattr(requests, method)(stack.url + path, timeout=10, **kw)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.json()["error"]["code"] == "unavailable"
        assert time.time() - t < 2.5
    assert requests.get(stack.url + "/readyz", timeout=10).status_code == 503
    server.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        r = requests.post(f"{stack.url}/api/v1/predict", files={"image": ("a.png", png)}, timeout=30)
        if r.status_code == 200:
            break
        time.sleep(0.5)
    assert r.status_code == 200 and r.json()["digit"] == mnist_test[1][0]
