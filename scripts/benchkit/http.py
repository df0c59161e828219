"""HTTP helpers: JSON calls, streamed uploads, job polling, /metrics, and the load generator."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import threading
import time
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from benchkit.common import pct


def http_json(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
              timeout: float = 60) -> tuple[int, dict | None]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, None


def upload_file(base: str, path: Path, field: str = "file", block: int = 1 << 20) -> tuple[int, dict]:
    """POST a file as multipart/form-data, streamed from disk with a Content-Length (never in memory)."""
    u = urlsplit(base)
    boundary = "----digitflow-bench-" + os.urandom(8).hex()
    pre = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{path.name}\"\r\n"
           "Content-Type: application/zip\r\n\r\n").encode()
    post = f"\r\n--{boundary}--\r\n".encode()
    length = len(pre) + path.stat().st_size + len(post)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    try:
        conn.putrequest("POST", "/api/v1/jobs")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        conn.send(pre)
        with open(path, "rb") as fh:
            while data := fh.read(block):
                conn.send(data)
        conn.send(post)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else {}
    finally:
        conn.close()


def parse_iso(ts: str | None) -> float | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def poll_job(base: str, job_id: str, timeout: float, interval: float = 0.05, on_progress=None) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, job = http_json("GET", f"{base}/api/v1/jobs/{job_id}", timeout=30)
        if status == 200 and job:
            if on_progress:
                on_progress(job)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
        time.sleep(interval)
    raise RuntimeError(f"job {job_id} did not finish within {timeout:.0f} s")


def fetch_digits(base: str, job_id: str, total: int) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for offset in range(0, total, 1000):
        status, page = http_json("GET", f"{base}/api/v1/jobs/{job_id}/results?offset={offset}&limit=1000")
        if status != 200:
            raise RuntimeError(f"results page {offset}: HTTP {status}")
        for item in page["items"]:
            out[item["index"]] = item["digit"]
    return out


# What this run sent to the service and got answered: the /metrics check compares the service's own counters.
SENT: Counter = Counter()


def scrape_metrics(base: str) -> dict[str, float]:
    """The service's figures from GET /metrics: images by outcome (all summed) and answered predictions."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {"images": 0.0, "predict_200": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "digitflow_images_total":
                out["images"] += sample.value
            elif (sample.name == "digitflow_http_request_duration_seconds_count"
                  and sample.labels.get("route") == "/api/v1/predict" and sample.labels.get("status") == "200"):
                out["predict_200"] += sample.value
    return out


def http_load(base: str, path: str, bodies: list[bytes], n: int, concurrency: int, labels: list[int] | None = None,
              content_type: str = "application/json") -> dict:
    """n POSTs from `concurrency` threads, each with its own keep-alive connection; latency and rate."""
    import psutil

    u = urlsplit(base)
    counter = itertools.count()
    lat: list[float] = []
    statuses: Counter = Counter()
    correct = [0, 0]
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)
    headers = {"Content-Type": content_type, "Connection": "keep-alive"}

    def work():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        barrier.wait()
        mine, ok = [], [0, 0]
        while (i := next(counter)) < n:
            body = bodies[i % len(bodies)]
            t = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
                with lock:
                    statuses["connection error"] += 1
                continue
            mine.append(time.perf_counter() - t)
            with lock:
                statuses[resp.status] += 1
                if resp.status == 200 and path == "/api/v1/predict":
                    SENT["predict_200"] += 1
            if resp.status == 200 and labels is not None:
                ok[1] += 1
                ok[0] += json.loads(raw).get("digit") == labels[i % len(labels)]
            if resp.will_close:
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.close()
        with lock:
            lat.extend(mine)
            correct[0] += ok[0]
            correct[1] += ok[1]

    threads = [threading.Thread(target=work, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    me = psutil.Process()
    cpu0 = sum(me.cpu_times()[:2])
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = sum(me.cpu_times()[:2]) - cpu0
    ms = [v * 1e3 for v in lat]
    return {
        "concurrency": concurrency, "requests": n, "wall_s": wall, "rps": len(lat) / wall,
        "p50_ms": pct(ms, 50), "p90_ms": pct(ms, 90), "p99_ms": pct(ms, 99), "max_ms": max(ms) if ms else None,
        "statuses": {str(k): v for k, v in statuses.items()},
        "accuracy": correct[0] / correct[1] if correct[1] else None,
        "client_cpu_cores": cpu / wall,
    }


def metrics_check(before: dict[str, float], after: dict[str, float]) -> dict:
    """What this run counted (SENT: images in finished bulk jobs plus answered drawings, and drawings answered
    200) against the deltas of the service's counters on /metrics between two scrapes."""
    return {k: {"bench": SENT[k] + SENT["predict_200"] * (k == "images"), "metrics": after[k] - before[k]}
            for k in ("images", "predict_200")}
