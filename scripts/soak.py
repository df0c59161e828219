"""Soak: mixed traffic for N minutes, then requests, errors, latency percentiles and memory over time.

Usage (from the repository root):

    .venv/bin/python scripts/soak.py --minutes 10               # starts its own stack; writes docs/reliability.md
    .venv/bin/python scripts/soak.py --minutes 10 --url http://127.0.0.1:5000 --redis-url redis://127.0.0.1:6379/0
                                                                # against scripts/run.sh (processes found by name)
    .venv/bin/python scripts/soak.py --minutes 1 --out /tmp/reliability.md   # a quick try

Traffic (threads, all at once, each with its own keep-alive connection):
  drawings   POST /api/v1/predict with the draw page's JSON data URL (a test digit drawn on a 280x280 canvas);
             checks the digit
  small ZIPs POST /api/v1/jobs with 20-300 digits, polled to the end, results read, every image checked; half of
             them deleted, half left for the pollers
  large ZIPs a 20,000-image ZIP every --large-every seconds, streamed from disk, polled, CSV downloaded and
             checked (one row per image), then deleted
  polling    GET job status, result pages, result PNGs and CSVs of recent jobs
  bad        hostile and malformed requests from issue 6's table, each with its expected status
A 5xx, a connection error, or a status that the request's kind does not expect counts as an error;
429 (the per-client rate limit, which all this traffic shares from one address) is counted apart.
Every accepted job must finish with exactly one result per image. The RSS of every process of the
service (and Redis's used_memory) is sampled every --sample seconds.

The stack it starts is scripts/stack.py's (as scripts/run.sh runs it) with RESULT_TTL_SECONDS=--ttl
(default 300) so that expiry is part of the run; with --url the service's own settings apply.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import zipfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))


# the bench's shared helpers: Service, uploads, data, report formats
from benchkit.common import drawing_body, load_mnist, machine, mb, md_table, pct, shifted_pngs, write_zip  # noqa: E402
from benchkit.http import upload_file  # noqa: E402
from benchkit.report import kept_notes  # noqa: E402
from benchkit.service import Service  # noqa: E402

from digitflow.contract import load_card  # noqa: E402
from digitflow.imaging import to_png  # noqa: E402
from digitflow.settings import get_settings  # noqa: E402

FINAL = ("succeeded", "failed", "cancelled")


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Stats:
    """Latencies and outcomes per kind, shared by all threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.count: dict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)  # 5xx and connection errors
        self.unexpected: dict[str, int] = defaultdict(int)  # a status the kind does not expect
        self.limited: dict[str, int] = defaultdict(int)  # 429
        self.examples: list[str] = []
        self.checks: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # name -> [ok, total]
        self.jobs: dict[str, dict] = {}  # job id -> {kind, total, outcome}

    def record(self, kind: str, status: int | None, seconds: float, expected: tuple[int, ...], note: str = "") -> None:
        with self.lock:
            self.count[kind] += 1
            self.lat[kind].append(seconds * 1e3)
            if status == 429:
                self.limited[kind] += 1
            elif status is None or status >= 500:
                self.errors[kind] += 1
                if len(self.examples) < 30:
                    self.examples.append(f"{kind}: {status or 'connection error'} {note}"[:300])
            elif status not in expected:
                self.unexpected[kind] += 1
                if len(self.examples) < 30:
                    self.examples.append(f"{kind}: got {status}, expected {expected} {note}"[:300])

    def check(self, name: str, ok: bool) -> None:
        with self.lock:
            self.checks[name][0] += int(ok)
            self.checks[name][1] += 1


class Client:
    """One keep-alive HTTP connection; request() never raises."""

    def __init__(self, base: str):
        u = urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60) -> tuple[int | None, bytes, float, dict]:
        t = time.perf_counter()
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            try:
                self.conn.request(method, path, body, headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.conn.close()
                    self.conn = None
                return resp.status, data, time.perf_counter() - t, dict(resp.getheaders())
            except (OSError, http.client.HTTPException) as exc:
                if self.conn:
                    self.conn.close()
                self.conn = None
                # a keep-alive connection the server closed between requests: retry once on a fresh one
                if attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                                     ConnectionResetError)):
                    t = time.perf_counter()
                    continue
                return None, str(exc).encode(), time.perf_counter() - t, {}
        return None, b"", time.perf_counter() - t, {}


def multipart(fields: list[tuple[str, str, bytes, str]]) -> tuple[bytes, str]:
    """(field, filename, data, content type) -> (body, content type header)."""
    boundary = "----soak" + os.urandom(8).hex()
    out = io.BytesIO()
    for name, filename, data, ctype in fields:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                  f"Content-Type: {ctype}\r\n\r\n".encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def png_of(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def bad_requests() -> list[tuple[str, str, str, bytes | None, dict, tuple[int, ...]]]:
    """(name, method, path, body, headers, expected statuses) for hostile and malformed requests."""
    rows = []

    def upload(name, data, filename="upload.zip", field="file", expected=(422,), path="/api/v1/jobs",
               ctype="application/zip"):
        body, ct = multipart([(field, filename, data, ctype)])
        rows.append((name, "POST", path, body, {"Content-Type": ct}, expected))

    def js(name, obj, expected, raw: bytes | None = None):
        rows.append((name, "POST", "/api/v1/predict", raw if raw is not None else json.dumps(obj).encode(),
                     {"Content-Type": "application/json"}, expected))

    upload("zip: not a zip", b"this is not a zip file at all")
    upload("zip: truncated", zip_bytes({"a.png": png_of(np.zeros((28, 28), np.uint8))})[:60])
    upload("zip: empty", zip_bytes({}))
    upload("zip: only junk", zip_bytes({"__MACOSX/._a.png": b"x", ".hidden.png": b"x", "dir/": b""}))
    upload("zip: wrong field", zip_bytes({"a.png": b"x"}), field="upload", expected=(400,))
    rows.append(("zip: text/plain body", "POST", "/api/v1/jobs", b"hello", {"Content-Type": "text/plain"}, (415,)))
    upload("image: zero bytes", b"", filename="a.png", field="image", path="/api/v1/predict", ctype="image/png")
    upload("image: text named .png", b"just some text", filename="a.png", field="image", path="/api/v1/predict",
           ctype="image/png")
    white = png_of(np.full((64, 64), 255, np.uint8))
    upload("image: all white", white, filename="w.png", field="image", path="/api/v1/predict", ctype="image/png")
    upload("image: svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', filename="a.svg",
           field="image", path="/api/v1/predict", ctype="image/svg+xml", expected=(415,))
    png = png_of(np.zeros((28, 28), np.uint8))
    upload("image: truncated png", png[: len(png) // 2], filename="t.png", field="image", path="/api/v1/predict",
           ctype="image/png")
    js("json: invalid base64", {"image": "data:image/png;base64,@@@not-base64@@@"}, (422,))
    js("json: data URL of another type", {"image": "data:text/plain;base64,aGVsbG8="}, (422,))
    js("json: pixels wrong shape", {"pixels": [[0] * 10] * 10}, (422,))
    js("json: pixels out of range", {"pixels": [[300] * 28] * 28}, (422,))
    js("json: pixels not numbers", {"pixels": [["a"] * 28] * 28}, (422,))
    js("json: not JSON", None, (400,), raw=b"{not json")
    js("json: no image", {"something": 1}, (400,))
    rows.append(("job: unknown id", "GET", "/api/v1/jobs/" + "0" * 32, None, {}, (404,)))
    rows.append(("job: malformed id", "GET", "/api/v1/jobs/../../etc/passwd", None, {}, (404,)))
    rows.append(("job: malformed results", "GET", "/api/v1/jobs/xyz/results", None, {}, (404,)))
    rows.append(("job: bad limit", "GET", "/api/v1/jobs/" + "0" * 32 + "/results?limit=abc", None, {}, (400, 404)))
    rows.append(("predict: bad wait", "POST", "/api/v1/predict?wait=-1",
                 json.dumps({"pixels": [[0] * 28] * 28}).encode(), {"Content-Type": "application/json"}, (400,)))
    return rows


class Soak:
    def __init__(self, args, base: str, x: np.ndarray, y: np.ndarray, large_zip: Path, large_labels: np.ndarray):
        self.args = args
        self.base = base
        self.x, self.y = x, y
        self.large_zip, self.large_labels = large_zip, large_labels
        self.stats = Stats()
        self.stop = threading.Event()
        self.pollable: list[tuple[str, int, float]] = []  # (job id, total, created) kept for the pollers
        self.plock = threading.Lock()
        self.bodies = [drawing_body(d) for d in x[:300]]
        self.pngs = [to_png(d) for d in x[:2000]]
        self.bad = bad_requests()

    # -- helpers --------------------------------------------------------------------------------
    def _sleep(self, seconds: float) -> bool:
        return self.stop.wait(seconds)

    def _wait_job(self, client: Client, job_id: str, total: int, kind: str, timeout: float,
                  interval: float) -> dict | None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, data, dt, _ = client.request("GET", f"/api/v1/jobs/{job_id}")
            self.stats.record("poll: job status", status, dt, (200,), job_id)
            if status == 200:
                job = json.loads(data)
                if job["status"] in FINAL:
                    return job
            time.sleep(interval)
        return None

    def _results(self, client: Client, job_id: str, total: int) -> dict[int, int | None]:
        out = {}
        for offset in range(0, total, 1000):
            status, data, dt, _ = client.request("GET", f"/api/v1/jobs/{job_id}/results?offset={offset}&limit=1000")
            self.stats.record("poll: results page", status, dt, (200,), job_id)
            if status != 200:
                return out
            for item in json.loads(data)["items"]:
                out[item["index"]] = item["digit"]
        return out

    def _finish_job(self, job_id: str, kind: str, total: int, job: dict | None, started: float) -> None:
        with self.stats.lock:
            self.stats.jobs[job_id] = {"kind": kind, "total": total, "status": job["status"] if job else "lost",
                                       "done": job["done"] if job else None,
                                       "seconds": time.time() - started}

    # -- traffic --------------------------------------------------------------------------------
    def drawer(self, seed: int) -> None:
        rng = random.Random(seed)
        client = Client(self.base)
        while not self.stop.is_set():
            i = rng.randrange(len(self.bodies))
            status, data, dt, _ = client.request("POST", "/api/v1/predict", self.bodies[i],
                                                 {"Content-Type": "application/json"})
            self.stats.record("drawing", status, dt, (200,))
            if status == 200:
                body = json.loads(data)
                self.stats.check("drawing digit correct", body.get("digit") == int(self.y[i]))
                if rng.random() < 0.05:
                    with self.plock:
                        self.pollable.append((body["job_id"], 1, time.time()))
            self._sleep(rng.uniform(0, 2 * self.args.think))

    def small_zips(self, seed: int) -> None:
        rng = random.Random(seed)
        client = Client(self.base)
        while not self.stop.is_set():
            n = rng.randint(20, 300)
            idx = [rng.randrange(len(self.pngs)) for _ in range(n)]
            body, ct = multipart([("file", "digits.zip", zip_bytes({f"d{k:04d}.png": self.pngs[i]
                                                                     for k, i in enumerate(idx)}), "application/zip")])
            started = time.time()
            status, data, dt, _ = client.request("POST", "/api/v1/jobs", body, {"Content-Type": ct})
            self.stats.record("small zip: upload", status, dt, (202,))
            if status == 202:
                job_id = json.loads(data)["id"]
                job = self._wait_job(client, job_id, n, "small", 120, 0.2)
                self._finish_job(job_id, "small zip", n, job, started)
                if job:
                    digits = self._results(client, job_id, n)
                    self.stats.check("small zip: one result per image", len(digits) == n and job["done"] == n)
                    right = sum(digits.get(k) == int(self.y[i]) for k, i in enumerate(idx))
                    self.stats.check("small zip: >= 95% of digits right", right >= 0.95 * n)
                    if rng.random() < 0.5:
                        status, _, dt, _ = client.request("DELETE", f"/api/v1/jobs/{job_id}")
                        self.stats.record("delete job", status, dt, (204,))
                    else:
                        with self.plock:
                            self.pollable.append((job_id, n, time.time()))
            self._sleep(rng.uniform(0.5, 2.0))

    def large_zips(self) -> None:
        client = Client(self.base)
        next_at = time.time() + 5
        while not self.stop.is_set():
            if self._sleep(max(0.0, next_at - time.time())):
                return
            next_at = time.time() + self.args.large_every
            total = len(self.large_labels)
            started = time.time()
            t = time.perf_counter()
            try:
                status, job = upload_file(self.base, self.large_zip)
            except Exception as exc:
                status, job = None, {"error": str(exc)}
            self.stats.record("large zip: upload", status, time.perf_counter() - t, (202,), str(job)[:200])
            if status != 202:
                continue
            job_id = job["id"]
            job = self._wait_job(client, job_id, total, "large", 600, 1.0)
            self._finish_job(job_id, "large zip", total, job, started)
            if not job:
                continue
            self.stats.check("large zip: one result per image", job["done"] == total)
            t = time.perf_counter()
            status, data, _, _ = client.request("GET", f"/api/v1/jobs/{job_id}/results.csv", timeout=120)
            self.stats.record("poll: csv", status, time.perf_counter() - t, (200,))
            if status == 200:
                rows = data.decode().strip().splitlines()
                self.stats.check("large zip: CSV has one row per image", len(rows) == total + 1)
                digits = {int(r.split(",")[0]): r.split(",")[3] for r in rows[1:]}
                right = sum(digits.get(i) == str(int(v)) for i, v in enumerate(self.large_labels))
                self.stats.check("large zip: >= 95% of digits right", right >= 0.95 * total)
            status, _, dt, _ = client.request("DELETE", f"/api/v1/jobs/{job_id}")
            self.stats.record("delete job", status, dt, (204,))

    def poller(self, seed: int) -> None:
        rng = random.Random(seed)
        client = Client(self.base)
        while not self.stop.is_set():
            with self.plock:
                horizon = time.time() - self.args.ttl / 2  # only jobs well within their time to live
                self.pollable = [p for p in self.pollable if p[2] > horizon][-500:]
                pick = rng.choice(self.pollable) if self.pollable else None
            if pick is None:
                self._sleep(0.5)
                continue
            job_id, total, _ = pick
            what = rng.random()
            if what < 0.4:
                status, _, dt, _ = client.request("GET", f"/api/v1/jobs/{job_id}")
                self.stats.record("poll: job status", status, dt, (200,), job_id)
            elif what < 0.7:
                offset = rng.randrange(0, total, 100) if total > 100 else 0
                status, _, dt, _ = client.request("GET", f"/api/v1/jobs/{job_id}/results?offset={offset}&limit=100")
                self.stats.record("poll: results page", status, dt, (200,), job_id)
            elif what < 0.9:
                status, _, dt, _ = client.request("GET", f"/api/v1/jobs/{job_id}/results/{rng.randrange(total)}.png")
                self.stats.record("poll: result png", status, dt, (200,), job_id)
            else:
                status, _, dt, _ = client.request("GET", f"/api/v1/jobs/{job_id}/results.csv")
                self.stats.record("poll: csv", status, dt, (200,), job_id)
            self._sleep(rng.uniform(0, 2 * self.args.think))

    def hostile(self, seed: int) -> None:
        rng = random.Random(seed)
        client = Client(self.base)
        while not self.stop.is_set():
            name, method, path, body, headers, expected = rng.choice(self.bad)
            status, data, dt, _ = client.request(method, path, body, headers)
            self.stats.record("bad request", status, dt, expected, f"{name}: {data[:120]!r}")
            self._sleep(rng.uniform(0, 1.0))


class MemorySampler(threading.Thread):
    """RSS of every process of the service (and Redis used_memory) every `interval` seconds."""

    def __init__(self, svc: Service, interval: float):
        super().__init__(daemon=True)
        self.svc, self.interval = svc, interval
        self.rows: list[dict] = []
        self.stop_event = threading.Event()
        self.t0 = time.time()
        self.cpu_prev: tuple[float, dict] | None = None

    def sample(self) -> None:
        import psutil

        row = {"t": time.time() - self.t0, "rss": {}, "cpu": {}}
        for name, procs in self.svc.processes().items():
            for k, p in enumerate(procs):
                label = name if k == 0 else f"{name} child {k}"
                with contextlib.suppress(psutil.NoSuchProcess):
                    row["rss"][label] = p.memory_info().rss
        cpu, now = self.svc.cpu(), time.time()
        if self.cpu_prev:
            t_prev, c_prev = self.cpu_prev
            row["cpu"] = {k: (v - c_prev.get(k, 0.0)) / (now - t_prev) for k, v in cpu.items()}
        self.cpu_prev = (now, cpu)
        if self.svc.redis:
            try:
                row["redis_used"] = self.svc.redis.info("memory")["used_memory"]
            except Exception:
                row["redis_used"] = None
        self.rows.append(row)

    def run(self) -> None:
        while True:
            self.sample()
            if self.stop_event.wait(self.interval):
                self.sample()
                return


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------
def render(args, R: dict) -> str:
    s: Stats = R["stats"]
    m = R["machine"]
    L = ["# Reliability", "",
         "## Soak", "",
         f"`scripts/soak.py --minutes {args.minutes:g}` on {R['date']}: mixed traffic against "
         + (f"the running service at {args.url}" if args.url else
            "the service's own stack (scripts/stack.py, as scripts/run.sh starts it: redis-server with append-only "
            "file, bulk worker with 2 processes, interactive worker, gunicorn; default rate limit on; "
            f"RESULT_TTL_SECONDS={args.ttl} so that expiry happens during the run)")
         + f". Machine: {m['cpu']}, {m['usable_cores']} cores, {mb(m['ram_bytes'])} RAM, Python {m['python']}; "
         f"model {R['model']['architecture']} {R['model']['version']}. Traffic: {args.drawers} drawing threads, "
         f"{args.small} small-ZIP threads (20-300 images), one {R['large_images']:,}-image ZIP every "
         f"{args.large_every:g} s, {args.pollers} polling threads, {args.hostile} thread of bad requests; think time "
         f"up to {2 * args.think * 1e3:.0f} ms. Reproduce with `.venv/bin/python scripts/soak.py --minutes "
         f"{args.minutes:g}`.", ""]
    total = sum(s.count.values())
    errors = sum(s.errors.values())
    unexpected = sum(s.unexpected.values())
    limited = sum(s.limited.values())
    jobs = list(s.jobs.values())
    lost = sum(1 for j in jobs if j["status"] == "lost")
    wrong = sum(1 for j in jobs if j["status"] != "lost" and (j["status"] != "succeeded" or j["done"] != j["total"]))
    L += ["### Summary", "",
          md_table(["", ""], [
              ["requests", f"{total:,} in {R['wall_s'] / 60:.1f} min ({total / R['wall_s']:,.0f}/s)"],
              ["server errors (5xx) and connection errors", f"**{errors}**"],
              ["unexpected statuses", f"**{unexpected}**"],
              ["rate limited (429, expected under this load)", f"{limited}"],
              ["bulk jobs accepted / finished with one result per image / lost",
               f"{len(jobs)} / {len(jobs) - lost - wrong} / {lost}"],
              ["images in bulk jobs", f"{sum(j['total'] for j in jobs):,}"],
          ])]
    if s.examples:
        L += ["", "First errors:", ""] + [f"- `{e}`" for e in s.examples[:15]]
    L += ["", "### Requests by kind", "",
          md_table(["kind", "requests", "5xx / conn. errors", "unexpected", "429", "p50", "p90", "p99", "max"],
                   [[k, f"{s.count[k]:,}", s.errors[k], s.unexpected[k], s.limited[k],
                     f"{pct(v, 50):.1f} ms", f"{pct(v, 90):.1f} ms", f"{pct(v, 99):.1f} ms",
                     f"{max(v):.1f} ms"]
                    for k, v in sorted(s.lat.items())])]
    by_kind = defaultdict(list)
    for j in jobs:
        by_kind[j["kind"]].append(j)
    L += ["", "### Jobs (upload start to finished, as the client saw it)", "",
          md_table(["kind", "jobs", "images", "succeeded", "lost", "p50", "p90", "max"],
                   [[k, len(v), f"{sum(j['total'] for j in v):,}", sum(j['status'] == 'succeeded' for j in v),
                     sum(j["status"] == "lost" for j in v),
                     f"{pct([j['seconds'] for j in v], 50):.2f} s",
                     f"{pct([j['seconds'] for j in v], 90):.2f} s",
                     f"{max(j['seconds'] for j in v):.2f} s"] for k, v in sorted(by_kind.items())])]
    L += ["", "### Checks", "",
          md_table(["check", "passed"], [[k, f"{ok:,} / {n:,}"] for k, (ok, n) in sorted(s.checks.items())])]
    rows = R["memory"]
    if rows:
        names = sorted({k for r in rows for k in r["rss"]})
        step = max(1, round(60 / args.sample))
        picked = rows[::step] + ([rows[-1]] if (len(rows) - 1) % step else [])
        L += ["", f"### Memory over time (RSS per process, sampled every {args.sample:g} s; one row a minute)", "",
              md_table(["t"] + names + ["Redis used_memory"],
                       [[f"{r['t'] / 60:.1f} min"] + [mb(r["rss"].get(n)) for n in names] +
                        [mb(r.get("redis_used"))] for r in picked])]
        warm = next((r for r in rows if r["t"] >= 60), rows[0])
        last = rows[-1]
        growth = []
        for n in names:
            vals = [r["rss"][n] for r in rows if n in r["rss"]]
            if not vals:
                continue
            growth.append([n, mb(vals[0]), mb(warm["rss"].get(n)), mb(max(vals)), mb(last["rss"].get(n)),
                           mb((last["rss"].get(n) or 0) - (warm["rss"].get(n) or 0))])
        L += ["", "Growth per process (first sample, after the first minute, peak, last, last minus after-1-min):", "",
              md_table(["process", "first", "at 1 min", "peak", "last", "growth after 1 min"], growth)]
        cpu_rows = [r for r in rows if r["cpu"]]
        if cpu_rows:
            cnames = sorted({k for r in cpu_rows for k in r["cpu"]})
            L += ["", "Mean CPU over the run (cores): " + ", ".join(
                f"{n} {np.mean([r['cpu'].get(n, 0) for r in cpu_rows]):.2f}" for n in cnames) + "."]
    L += [""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="digitflow soak test (see the module docstring)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--url", default=None, help="a running service (default: start one)")
    ap.add_argument("--redis-url", default=None, help="its Redis, for used_memory (with --url)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    ap.add_argument("--json", default=None, help="also write the raw figures as JSON here")
    ap.add_argument("--drawers", type=int, default=3)
    ap.add_argument("--small", type=int, default=1)
    ap.add_argument("--pollers", type=int, default=2)
    ap.add_argument("--hostile", type=int, default=1)
    ap.add_argument("--large-every", type=float, default=60.0, help="seconds between large ZIPs")
    ap.add_argument("--large-images", type=int, default=20_000)
    ap.add_argument("--think", type=float, default=0.08, help="mean pause between a thread's requests (s)")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between memory samples")
    ap.add_argument("--ttl", type=int, default=300, help="RESULT_TTL_SECONDS of the stack it starts")
    args = ap.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = get_settings()
    R: dict = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
               "model": load_card(str(settings.model_dir))}
    x, y = load_mnist(10_000)
    tmp = Path(tempfile.mkdtemp(prefix="digitflow-soak-"))
    large_labels = np.asarray([y[i % len(y)] for i in range(args.large_images)])
    large_zip = write_zip(tmp / "large.zip", shifted_pngs(x, args.large_images))
    R["large_images"] = args.large_images
    svc = None
    try:
        # the stack as scripts/run.sh runs it (default rate limit on), with a short result TTL
        svc = Service(args.url, args.redis_url, tmp, env={"RESULT_TTL_SECONDS": str(args.ttl)})
        log(f"service at {svc.url}; soaking for {args.minutes:g} min")
        soak = Soak(args, svc.url, x, y, large_zip, large_labels)
        sampler = MemorySampler(svc, args.sample)
        sampler.start()
        threads = [threading.Thread(target=soak.drawer, args=(i,), daemon=True) for i in range(args.drawers)]
        threads += [threading.Thread(target=soak.small_zips, args=(100 + i,), daemon=True) for i in range(args.small)]
        threads += [threading.Thread(target=soak.poller, args=(200 + i,), daemon=True) for i in range(args.pollers)]
        threads += [threading.Thread(target=soak.hostile, args=(300 + i,), daemon=True) for i in range(args.hostile)]
        threads += [threading.Thread(target=soak.large_zips, daemon=True)]
        t0 = time.time()
        for t in threads:
            t.start()
        end = t0 + args.minutes * 60
        while time.time() < end:
            time.sleep(min(30, max(0.1, end - time.time())))
            s = soak.stats
            log(f"{(time.time() - t0) / 60:.1f} min: {sum(s.count.values()):,} requests, "
                f"{sum(s.errors.values())} errors, {sum(s.unexpected.values())} unexpected, "
                f"{sum(s.limited.values())} rate limited, {len(s.jobs)} bulk jobs")
        soak.stop.set()
        for t in threads:
            t.join(timeout=660)  # a large job in flight is seen to its end
        R["wall_s"] = time.time() - t0
        sampler.stop_event.set()
        sampler.join()
        if svc.stack:
            for name, proc in svc.stack.procs.items():
                if proc.poll() is not None:
                    soak.stats.examples.append(f"process {name} exited with {proc.returncode} during the soak")
        R["stats"], R["memory"] = soak.stats, sampler.rows
    finally:
        if svc:
            svc.close()
        for f in tmp.glob("*.zip"):
            f.unlink()
    report = render(args, R)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report += kept_notes(out)  # the hand-written notes between the markers survive a re-run
    out.write_text(report)
    if args.json:
        s = R["stats"]
        Path(args.json).write_text(json.dumps({
            "count": s.count, "errors": s.errors, "unexpected": s.unexpected, "limited": s.limited,
            "examples": s.examples, "checks": s.checks, "jobs": s.jobs, "memory": R["memory"],
            "latency_ms": {k: {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in s.lat.items()},
        }, indent=2, default=str))
    print(report)
    log(f"wrote {out}; logs in {tmp}")
    s = R["stats"]
    bad = sum(s.errors.values()) + sum(s.unexpected.values()) + sum(1 for j in s.jobs.values() if j["status"] == "lost")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
