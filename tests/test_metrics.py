"""Metrics: GET /metrics on the real web (gunicorn, multiprocess mode) and the workers' METRICS_PORT, parsed
with prometheus_client's own parser, moving with real traffic through real workers and Redis."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import redis
import requests
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families
from stack import RedisServer

from tests.conftest import all_results, digit_png, make_zip, wait_job

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "digitflow.json"


def scrape(url: str, headers: dict | None = None) -> dict[str, dict]:
    """{family name: {"type", "samples": {(sample name, sorted labels): value}}}"""
    resp = requests.get(url, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    families = {}
    for fam in text_string_to_metric_families(resp.text):
        families[fam.name] = {"type": fam.type,
                              "samples": {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}}
    return families


def value(families: dict, family: str, sample: str | None = None, **labels) -> float:
    """One sample's value (0 if absent, as a counter that has not moved yet)."""
    key = (sample or family, tuple(sorted(labels.items())))
    return families[family]["samples"].get(key, 0.0)


def worker_url(stack, name: str) -> str:
    return f"http://127.0.0.1:{stack.metrics_ports[name]}/metrics"


def wait_for_workers(base: str) -> dict:
    """A scrape once both queues' workers have beaten (the test's clean Redis dropped their heartbeats)."""
    deadline = time.time() + 60
    while True:
        fams = scrape(base + "/metrics")
        if all(value(fams, "digitflow_workers_alive", queue=q) >= 1 for q in ("bulk", "interactive")):
            return fams
        assert time.time() < deadline, fams["digitflow_workers_alive"]
        time.sleep(0.5)


@pytest.fixture(scope="module")
def digits(mnist_test) -> list[bytes]:
    x, _ = mnist_test
    return [digit_png(x[i]) for i in range(12)]


def test_counters_move_with_real_traffic(api, stack, digits):
    drawings, good = digits[:5], digits[5:]
    bad = {"junk.png": b"this is not an image", "blank.png": digit_png(np.zeros((28, 28), np.uint8)),
           "inner.zip": make_zip({"x.png": digits[0]})}
    before = wait_for_workers(api)
    bulk0, inter0 = scrape(worker_url(stack, "bulk")), scrape(worker_url(stack, "interactive"))

    versions = set()
    for png in drawings:
        resp = requests.post(f"{api}/api/v1/predict?wait=30", files={"image": ("d.png", png, "image/png")}, timeout=40)
        assert resp.status_code == 200, resp.text
        versions.add(resp.json()["model"]["version"])
    files = {f"g{i}.png": png for i, png in enumerate(good)} | bad
    resp = requests.post(f"{api}/api/v1/jobs", files={"file": ("scans.zip", make_zip(files), "application/zip")},
                         timeout=60)
    assert resp.status_code == 202, resp.text
    job = wait_job(api, resp.json()["id"])
    assert (job["status"], job["total"], job["failed"]) == ("succeeded", len(files), len(bad))
    errors = Counter(item["error"]["code"] for item in all_results(api, job["id"]) if item["error"])
    assert sum(errors.values()) == len(bad) and len(errors) >= 2  # worker-found and web-found refusals

    after = scrape(api + "/metrics")
    grew = {o: value(after, "digitflow_images", "digitflow_images_total", outcome=o)
            - value(before, "digitflow_images", "digitflow_images_total", outcome=o) for o in ["ok", *errors]}
    assert grew == {"ok": len(drawings) + len(good), **errors}
    assert after["digitflow_images"]["type"] == "counter"

    jobs = {s: value(after, "digitflow_jobs", "digitflow_jobs_total", state=s)
            - value(before, "digitflow_jobs", "digitflow_jobs_total", state=s) for s in ("queued", "succeeded")}
    assert jobs == {"queued": 1, "succeeded": 1}  # single predictions are counted as images, not jobs

    hist = "digitflow_http_request_duration_seconds"
    labels = {"route": "/api/v1/predict", "method": "POST", "status": "200"}
    assert value(after, hist, hist + "_count", **labels) - value(before, hist, hist + "_count", **labels) == len(drawings)
    assert value(after, hist, hist + "_bucket", le="+Inf", **labels) == value(after, hist, hist + "_count", **labels)
    routes = {dict(k[1]).get("route") for k in after[hist]["samples"]}
    assert "/api/v1/jobs/<job_id>" in routes and not any(job["id"] in (r or "") for r in routes)  # rules, not paths

    (version,) = versions
    info = [dict(k[1]) for k, v in after["digitflow_model_info"]["samples"].items() if v == 1]
    assert [i["version"] for i in info] == [version] and info[0]["architecture"]
    for gauge in ("digitflow_queue_depth", "digitflow_queue_oldest_age_seconds", "digitflow_workers_alive"):
        assert {dict(k[1])["queue"] for k in after[gauge]["samples"]} == {"bulk", "interactive"}, gauge
        assert after[gauge]["type"] == "gauge"
    assert value(after, "digitflow_redis_up") == 1

    # Each worker's own port: the model calls it made, summed over its pool processes.
    bulk1, inter1 = scrape(worker_url(stack, "bulk")), scrape(worker_url(stack, "interactive"))
    for fams0, fams1, images in ((bulk0, bulk1, len(good)), (inter0, inter1, len(drawings))):
        size, secs = "digitflow_model_batch_size", "digitflow_model_call_seconds"
        calls = value(fams1, size, size + "_count") - value(fams0, size, size + "_count")
        assert value(fams1, size, size + "_sum") - value(fams0, size, size + "_sum") == images  # images that reached the model
        assert 1 <= calls <= images
        assert value(fams1, secs, secs + "_count") - value(fams0, secs, secs + "_count") == calls
        assert fams1[secs]["type"] == fams1[size]["type"] == "histogram"


def test_metrics_route_is_open_and_has_the_security_headers(api):
    resp = requests.get(api + "/metrics", timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert "digitflow_http_request_duration_seconds" in resp.text


def test_metrics_are_not_rate_limited_and_not_behind_the_api_token(redis_url, redis_client):
    from web import create_app

    app = create_app({"redis_url": redis_url, "rate_limit": "2 per minute", "api_token": "secret-api"})
    client = app.test_client()
    assert all(client.get("/metrics").status_code == 200 for _ in range(5))
    auth = {"Authorization": "Bearer secret-api"}
    codes = [client.get("/api/v1/models", headers=auth).status_code for _ in range(3)]
    assert codes == [200, 200, 429]  # the limiter is on, and /metrics is outside it
    text = client.get("/metrics").get_data(as_text=True)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    statuses = {s.labels["status"] for s in fams["digitflow_http_request_duration_seconds"].samples
                if s.labels.get("route") == "/api/v1/models"}
    assert {"200", "429"} <= statuses  # answers from before_request hooks are timed too


def test_metrics_token_protects_the_route_when_set(redis_url, redis_client):
    from web import create_app

    client = create_app({"redis_url": redis_url, "metrics_token": "scrape-me"}).test_client()
    resp = client.get("/metrics")
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200


@pytest.fixture
def own_redis(tmp_path) -> redis.Redis:
    """A Redis no worker listens to: messages put on its queues stay there."""
    server = RedisServer(tmp_path, appendonly=False).start()
    yield redis.Redis.from_url(server.url)
    server.stop()


def test_queue_depth_oldest_age_and_heartbeats_from_redis(own_redis):
    from digitflow.celery_app import CHUNK_TASK
    from digitflow.drawings import STREAM, Drawing
    from digitflow.jobstore import JobStore
    from web.service_metrics import ServiceCollector
    from worker.heartbeat import beat

    url = own_redis.connection_pool.connection_kwargs
    broker = Celery("probe", broker=f"redis://{url['host']}:{url['port']}/0")
    store = JobStore(own_redis, 3600)
    old = store.create(total=3, chunks=2, kind="bulk", model={"version": "v"})
    own_redis.hset(store.key(old, "job"), "created_at", time.time() - 600)  # as if uploaded ten minutes ago
    new = store.create(total=3, chunks=2, kind="bulk", model={"version": "v"})
    for job_id in (old, new):
        for chunk in (0, 1):
            broker.send_task(CHUNK_TASK, args=(job_id, chunk), queue="bulk")
    now = time.time()  # a drawing on its stream, that no drawing worker has taken yet
    own_redis.xadd(STREAM, Drawing("d" * 32, b"digit", "d.png", now, now + 60, "{}").fields())
    beat(own_redis, "bulk@here", ["bulk"])
    beat(own_redis, "gone@here", ["bulk"], now=time.time() - 3600)  # a worker that stopped beating

    fams = {f.name: f for f in ServiceCollector(own_redis, lambda: {"version": "v1", "architecture": "a"}).collect()}

    def gauge(name, queue):
        return next(s.value for s in fams[name].samples if s.labels["queue"] == queue)

    assert (gauge("digitflow_queue_depth", "bulk"), gauge("digitflow_queue_depth", "interactive")) == (4, 1)
    assert gauge("digitflow_queue_oldest_age_seconds", "bulk") >= 600  # the oldest message is the old job's
    assert 0 <= gauge("digitflow_queue_oldest_age_seconds", "interactive") < 600
    assert (gauge("digitflow_workers_alive", "bulk"), gauge("digitflow_workers_alive", "interactive")) == (1, 0)
    assert fams["digitflow_jobs_active"].samples[0].value == 2
    jobs = {s.labels["state"]: s.value for s in fams["digitflow_jobs"].samples}
    assert jobs["queued"] == 2 and jobs["running"] == 0
    assert fams["digitflow_model_info"].samples[0].labels == {"version": "v1", "architecture": "a"}

    store.cancel(new)
    store.cancel(new)  # a second cancel is not a second cancelled job
    fams = {f.name: f for f in ServiceCollector(own_redis, dict).collect()}
    jobs = {s.labels["state"]: s.value for s in fams["digitflow_jobs"].samples}
    assert jobs["cancelled"] == 1 and fams["digitflow_jobs_active"].samples[0].value == 1
    assert "digitflow_model_info" in fams  # a card without version still names the family


def test_redis_down_is_a_figure_not_a_failed_scrape(tmp_path):
    from web.service_metrics import ServiceCollector

    server = RedisServer(tmp_path, appendonly=False).start()
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
    server.stop()
    fams = {f.name: f for f in ServiceCollector(client, lambda: {"version": "v", "architecture": "a"}).collect()}
    assert fams["digitflow_redis_up"].samples[0].value == 0 and "digitflow_model_info" in fams


def test_every_metric_the_dashboard_queries_is_exposed(api, stack):
    names = set()
    for url in (api + "/metrics", worker_url(stack, "bulk"), worker_url(stack, "interactive")):
        for fam in text_string_to_metric_families(requests.get(url, timeout=10).text):
            names |= {fam.name} | {s.name for s in fam.samples}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    for expr in exprs:
        used = re.findall(r"\bdigitflow_\w+", expr)
        assert used, expr
        for name in used:
            assert name in names or re.sub(r"_(bucket|count|sum|total)$", "", name) in names, (name, expr)


def test_drawings_waiting_are_those_no_worker_has_taken(own_redis):
    from digitflow.drawings import GROUP, STREAM, Drawing
    from web.service_metrics import ServiceCollector

    def waiting() -> tuple[float, float]:
        fams = {f.name: f for f in ServiceCollector(own_redis, dict).collect()}
        return tuple(next(s.value for s in fams[name].samples if s.labels["queue"] == "interactive")
                     for name in ("digitflow_queue_depth", "digitflow_queue_oldest_age_seconds"))

    assert waiting() == (0, 0)  # no stream yet
    now = time.time()
    for i in range(3):
        own_redis.xadd(STREAM, Drawing(f"{i}" * 32, b"digit", "d.png", now, now + 60, "{}").fields())
    own_redis.xgroup_create(STREAM, GROUP, id="0")
    assert waiting()[0] == 3
    own_redis.xreadgroup(GROUP, "probe", {STREAM: ">"}, count=2)  # two handed to a worker, one waits
    depth, age = waiting()
    assert depth == 1 and 0 <= age < 60
    own_redis.xreadgroup(GROUP, "probe", {STREAM: ">"}, count=2)
    assert waiting() == (0, 0)
