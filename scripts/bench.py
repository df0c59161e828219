"""Benchmarks: engine, in-process pipeline, bulk and single drawings end to end, naive peers,
resources and scaling, in one run on one machine; prints tables and writes docs/benchmarks.md.

Usage (from the repository root, with the service's virtual environment):

    .venv/bin/python scripts/bench.py                       # full run (~8 min on 2 cores), writes docs/benchmarks.md
    .venv/bin/python scripts/bench.py --smoke --out /tmp/b.md   # a few hundred images, < 30 s (what CI runs)
    .venv/bin/python scripts/bench.py --sections engine,bulk    # only some sections
    .venv/bin/python scripts/bench.py --url http://127.0.0.1:5000 --redis-url redis://127.0.0.1:6379/0
                                                            # against a running service (scripts/run.sh):
                                                            # the resources and scaling sections need the
                                                            # stack this script starts and are skipped
    .venv/bin/python scripts/bench.py --profile runs/profile  # also py-spy the web and the workers

Sections (--sections, comma separated; default all):
  engine     the shipped model in-process, ONNX Runtime and Keras, batch 1/32/256; the seed architecture beside it
  frontend   decode + front end alone, CPU per image, one process: 28x28 MNIST PNGs, 28x28 and 16x16 scans, a 12 MP JPEG photo
  pipeline   decode + normalise + model (worker/pipeline.py) on the 10,000 MNIST test PNGs, one process per core
  bulk       a ZIP of those PNGs via POST /api/v1/jobs, polled to completion: images/s, ratio, accuracy
  drawings   1,000 POST /api/v1/predict at concurrency 1, 8 and 32: p50/p90/p99, requests/s, load-generator CPU
  peers      per-image Keras model.predict loop, one Celery task per image, LitServe with dynamic batching
  resources  worker RSS; web RSS through a 100,000-image ZIP; Redis memory per queued image
  scaling    bulk rate with 1 and 2 worker processes

The stack it starts is the service's own (scripts/stack.py: redis-server with append-only file,
the bulk worker with 2 processes, the drawing worker, gunicorn), with the per-client rate
limit off (RATE_LIMIT=off), since one load generator sends everything from one address.
MODEL_DIR (default models/) picks the model; MNIST_DIR the test split (default: the copy in
tests/fixtures/mnist). Extra dependencies: `pip install -e .[bench]` (litserve, psutil, py-spy
for --profile; without py-spy, --profile is refused before anything starts).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import io
import itertools
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections import Counter
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from stack import RedisServer, Stack, free_port, redis_server_binary  # noqa: E402

from digitflow.contract import load_card  # noqa: E402
from digitflow.imaging import to_png  # noqa: E402
from digitflow.settings import get_settings  # noqa: E402

SECTIONS = ("engine", "frontend", "pipeline", "bulk", "drawings", "peers", "resources", "scaling")
PEERS_DIR = ROOT / "scripts" / "bench_peers"
SPAWN = mp.get_context("spawn")  # never fork a process that may have TensorFlow or threads loaded

# Targets of issue 7 (ratios measured in the same run).
TARGETS = {
    "bulk_ratio_min": 0.75, "bulk_ratio_aim": 0.9, "bulk_ips_min": 2500, "bulk_ips_aim": 4000,
    "p50_max_ms": 10, "p99_max_ms": 40, "c32_rps_min": 500, "c32_rps_aim": 1000,
    "vs_keras_loop": 20, "vs_one_task": 5, "worker_rss_mb": 300, "web_growth_mb": 64,
    "png28_cpu_ms": 0.3, "jpeg12mp_cpu_ms": 30,  # issue 13: the front end's cost
}


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def md_table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def f0(x) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:,.0f}"


def f1(x) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:,.1f}"


def f2(x) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:,.2f}"


def mb(nbytes: float | None) -> str:
    return "–" if nbytes is None else f"{nbytes / 2**20:,.0f} MB"


def pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        redis_v = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True, timeout=5).stdout
        redis_v = redis_v.split("v=")[1].split()[0] if "v=" in redis_v else redis_v.strip()
    except Exception:
        redis_v = "unknown"
    pkgs = ["onnxruntime", "tensorflow-cpu", "keras", "numpy", "pillow", "celery", "redis",
            "flask", "gunicorn", "litserve", "psutil"]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_bytes": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis_server": redis_v,
        "packages": {p: pkg_version(p) for p in pkgs},
        "loadavg_start": os.getloadavg(),
    }


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def mnist_dir() -> Path:
    given = os.environ.get("MNIST_DIR")
    if given and any(Path(given).glob("t10k-images*")):
        return Path(given)
    return ROOT / "tests" / "fixtures" / "mnist"


def load_mnist(n: int) -> tuple[np.ndarray, np.ndarray]:
    from model_training.data import load_test_split

    x, y = load_test_split(mnist_dir())
    return x[:n], y[:n].astype(int)


def write_zip(path: Path, pngs: list[bytes], names: list[str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, data in enumerate(pngs):
            zf.writestr(names[i] if names else f"{i:06d}.png", data)
    return path


def shifted_pngs(x: np.ndarray, n: int, seed: int = 7) -> list[bytes]:
    """n MNIST digits (cycling through x) each shifted by up to 2 pixels in each direction."""
    rng = np.random.default_rng(seed)
    shifts = rng.integers(-2, 3, size=(n, 2))
    return [to_png(np.roll(x[i % len(x)], tuple(shifts[i]), axis=(0, 1))) for i in range(n)]


def drawing_body(digit: np.ndarray) -> bytes:
    """A 28x28 MNIST digit as the draw page sends it: a 280x280 PNG, dark ink on white, as a data URL."""
    from PIL import Image

    big = Image.fromarray(255 - digit).resize((200, 200), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (280, 280), 255)
    canvas.paste(big, (40, 40))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return json.dumps({"image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}).encode()


# ------------------------------------------------------------------------------------------------
# 1. engine (in a spawned child: TensorFlow never enters this process)
# ------------------------------------------------------------------------------------------------
def _time_calls(fn, x, seconds: float) -> float:
    """Median seconds per call of fn(x), after two warm-up calls."""
    fn(x)
    fn(x)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def engine_child(model_dir: str, batches: list[int], seconds: float, keras_too: bool, seed_too: bool) -> list[dict]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from worker.engine import Engine, default_threads

    cores = default_threads()
    card = load_card(model_dir)
    rng = np.random.default_rng(0)
    rows = []

    def measure(label: str, backend: str, threads: str, fn):
        for b in batches:
            x = rng.random((b, 28, 28, 1), dtype=np.float32)
            s = _time_calls(fn, x, seconds)
            rows.append({"model": label, "backend": backend, "threads": threads, "batch": b,
                         "ms_per_call": s * 1e3, "images_per_s": b / s})

    shipped = f"{card['architecture']} (shipped, {card['macs_per_image'] / 1e6:.1f} M MAC)"
    for t in sorted({1, cores}):
        eng = Engine(model_dir, "onnx", t)
        measure(shipped, "ONNX Runtime", str(t), eng.predict)
    if keras_too:
        eng = Engine(model_dir, "keras")
        measure(shipped, "Keras (direct call)", "TF default", eng.predict)
    if seed_too:
        import onnxruntime as ort

        from model_training.architectures import build, count_macs
        from model_training.evaluate import seed_onnx

        model = build("seed")
        label = f"seed (original design, untrained, {count_macs(model) / 1e6:.1f} M MAC)"
        with tempfile.TemporaryDirectory() as tmp:
            path = seed_onnx(Path(tmp) / "seed.onnx")
            for t in sorted({1, cores}):
                opts = ort.SessionOptions()
                opts.intra_op_num_threads, opts.inter_op_num_threads = t, 1
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                name = sess.get_inputs()[0].name
                measure(label, "ONNX Runtime", str(t), lambda x, s=sess, n=name: s.run(None, {n: x})[0])
        if keras_too:
            measure(label, "Keras (direct call)", "TF default", lambda x, m=model: np.asarray(m(x, training=False)))
    return rows


# ------------------------------------------------------------------------------------------------
# 2. in-process pipeline: one process per core, no HTTP/Redis/Celery
# ------------------------------------------------------------------------------------------------
_P: dict = {}


def _pipe_init(model_dir: str, pngs: list[bytes]) -> None:
    from worker.engine import Engine

    _P["engine"] = Engine(model_dir, "onnx", 1)
    _P["pngs"] = pngs
    _P["engine"].predict(np.zeros((1, 28, 28, 1), np.float32))


def _pipe_ready(_: int) -> int:
    time.sleep(0.2)
    return os.getpid()


def _pipe_chunk(span: tuple[int, int]) -> list[tuple[int, int]]:
    from worker.pipeline import run_batch

    s = get_settings()
    start, end = span
    inputs = {i: _P["pngs"][i] for i in range(start, end)}
    results = run_batch(_P["engine"], inputs, s.max_image_pixels, s.batch_size).results
    return [(i, r.get("digit", -1)) for i, r in results.items()]


def pipeline_rate(model_dir: str, pngs: list[bytes], labels: np.ndarray, processes: int, repeats: int) -> dict:
    chunk = get_settings().chunk_size
    spans = [(i, min(i + chunk, len(pngs))) for i in range(0, len(pngs), chunk)]
    with SPAWN.Pool(processes, initializer=_pipe_init, initargs=(model_dir, pngs)) as pool:
        pool.map(_pipe_ready, range(processes * 2), chunksize=1)
        rates, acc = [], None
        for _ in range(repeats):
            t = time.perf_counter()
            out = [r for part in pool.map(_pipe_chunk, spans, chunksize=1) for r in part]
            rates.append(len(pngs) / (time.perf_counter() - t))
            pred = dict(out)
            acc = float(np.mean([pred[i] == labels[i] for i in range(len(pngs))]))
    return {"processes": processes, "images": len(pngs), "images_per_s": statistics.median(rates),
            "runs": rates, "accuracy": acc}


# ------------------------------------------------------------------------------------------------
# HTTP helpers
# ------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------
# the service under test
# ------------------------------------------------------------------------------------------------
class Service:
    """The stack this script starts (Stack + its own redis-server), or a running one given by URL."""

    def __init__(self, url: str | None, redis_url: str | None, log_dir: Path, env: dict | None = None):
        self.log_dir = log_dir
        self.redis_server: RedisServer | None = None
        self.stack: Stack | None = None
        if url:
            self.url = url.rstrip("/")
            self.redis_url = redis_url
        else:
            self.redis_server = RedisServer(log_dir / "redis").start()
            self.redis_url = self.redis_server.url
            env = {"RATE_LIMIT": "off"} if env is None else env  # one load generator: no per-client limit
            self.stack = Stack({"REDIS_URL": self.redis_url, **env}, log_dir / "logs", bulk_processes=2)
            self.stack.start_all()
            self.url = self.stack.url
        import redis

        self.redis = redis.Redis.from_url(self.redis_url) if self.redis_url else None

    @property
    def owned(self) -> bool:
        return self.stack is not None

    def processes(self) -> dict[str, list]:
        """name -> psutil processes (a worker's main process and its pool children; gunicorn's too)."""
        import psutil

        out: dict[str, list] = {}
        if self.stack:
            for name, proc in self.stack.procs.items():
                if proc.poll() is None:
                    try:
                        p = psutil.Process(proc.pid)
                        out[name] = [p, *p.children(recursive=True)]
                    except psutil.NoSuchProcess:
                        pass
            if self.redis_server and self.redis_server.proc:
                out["redis"] = [psutil.Process(self.redis_server.proc.pid)]
            return out
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "gunicorn" in cmd and "web:create_app" in cmd:
                out.setdefault("web", []).append(p)
            elif "celery" in cmd and "-Q bulk" in cmd:
                out.setdefault("bulk", []).append(p)
            elif "worker.drawings" in cmd:  # the drawing worker (worker/drawings.py)
                out.setdefault("interactive", []).append(p)
            elif "redis-server" in cmd:
                out.setdefault("redis", []).append(p)
        return out

    def cpu(self) -> dict[str, float]:
        import psutil

        out = {}
        for name, procs in self.processes().items():
            total = 0.0
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += sum(p.cpu_times()[:2])
            out[name] = total
        return out

    def rss(self) -> dict[str, list[tuple[int, str, int]]]:
        import psutil

        out = {}
        for name, procs in self.processes().items():
            rows = []
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    rows.append((p.pid, "main" if p is procs[0] else "child", p.memory_info().rss))
            out[name] = rows
        return out

    def wait_worker(self, prefix: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, body = http_json("GET", self.url + "/readyz", timeout=5)
            if status == 200 and any(w.startswith(prefix + "@") for w in body.get("workers", [])):
                return
            time.sleep(0.3)
        raise RuntimeError(f"worker {prefix} did not answer within {timeout} s")

    def restart_bulk(self, processes: int, threads: int | None = None) -> None:
        assert self.stack
        self.stack.stop("bulk")
        self.stack.bulk_processes = processes
        if threads:
            self.stack.env["INFERENCE_THREADS"] = str(threads)
        else:
            self.stack.env.pop("INFERENCE_THREADS", None)
        self.stack.start("bulk")
        self.wait_worker("bulk")
        time.sleep(1.0)  # pool children forked and idle

    def redis_info(self) -> dict:
        info = self.redis.info("all") if self.redis else {}
        calls = sum(v["calls"] for k, v in info.items() if k.startswith("cmdstat_") and isinstance(v, dict))
        return {"used_memory": info.get("used_memory"), "calls": calls,
                "net_in": info.get("total_net_input_bytes"), "net_out": info.get("total_net_output_bytes")}

    def close(self) -> None:
        if self.stack:
            self.stack.stop_all()
        if self.redis_server:
            self.redis_server.stop()


def cpu_delta(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, float]:
    return {k: (after.get(k, 0.0) - before.get(k, 0.0)) / wall for k in after}


# ------------------------------------------------------------------------------------------------
# 3. bulk end to end
# ------------------------------------------------------------------------------------------------
def bulk_run(svc: Service, zip_path: Path, labels: np.ndarray | None, timeout: float = 600) -> dict:
    cpu0, info0 = svc.cpu(), svc.redis_info()
    t0 = time.time()
    status, job = upload_file(svc.url, zip_path)
    t_uploaded = time.time()
    if status != 202:
        raise RuntimeError(f"upload answered {status}: {job}")
    job = poll_job(svc.url, job["id"], timeout)
    SENT["images"] += job["total"]
    t_seen = time.time()
    finished = parse_iso(job.get("finished_at")) or t_seen
    wall = max(finished - t0, 1e-6)
    cpu1, info1 = svc.cpu(), svc.redis_info()
    total = job["total"]
    out = {
        "job_id": job["id"], "images": total, "status": job["status"], "done": job["done"], "failed": job["failed"],
        "upload_s": t_uploaded - t0, "wall_s": wall, "images_per_s": total / wall,
        "cpu_cores": cpu_delta(cpu0, cpu1, t_seen - t0),
        "cpu_s_per_image": {k: (cpu1.get(k, 0) - cpu0.get(k, 0)) / total for k in cpu1},
        "redis_calls_per_image": (info1["calls"] - info0["calls"]) / total if svc.redis else None,
        "redis_in_bytes_per_image": (info1["net_in"] - info0["net_in"]) / total if svc.redis else None,
        "redis_out_bytes_per_image": (info1["net_out"] - info0["net_out"]) / total if svc.redis else None,
    }
    if labels is not None:
        digits = fetch_digits(svc.url, job["id"], total)
        out["accuracy"] = float(np.mean([digits.get(i) == labels[i] for i in range(total)]))
        out["missing"] = sum(1 for i in range(total) if digits.get(i) is None)
    http_json("DELETE", f"{svc.url}/api/v1/jobs/{job['id']}")
    return out


def bulk_median(svc: Service, zip_path: Path, labels: np.ndarray, repeats: int) -> dict:
    runs = [bulk_run(svc, zip_path, labels) for _ in range(repeats)]
    for r in runs:
        log(f"  bulk {r['images']} images: {r['images_per_s']:,.0f} images/s (upload {r['upload_s']:.2f} s, "
            f"total {r['wall_s']:.2f} s), accuracy {r.get('accuracy', float('nan')):.4f}")
    best = sorted(runs, key=lambda r: r["images_per_s"])[len(runs) // 2]
    return {**best, "runs": [r["images_per_s"] for r in runs]}


# ------------------------------------------------------------------------------------------------
# 5. peers
# ------------------------------------------------------------------------------------------------
def keras_loop_child(model_dir: str, pngs: list[bytes], labels: list[int]) -> dict:
    """The original system's way: per image, decode + normalise, then keras model.predict on a batch of one."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from digitflow.contract import KERAS_FILE
    from worker.pipeline import prepare

    model = keras.models.load_model(Path(model_dir) / KERAS_FILE)
    s = get_settings()
    warm = prepare(pngs[0], s.max_image_pixels).astype(np.float32)[None, ..., None] / 255.0
    model.predict(warm, verbose=0)
    right, t0 = 0, time.perf_counter()
    for png, label in zip(pngs, labels, strict=True):
        x = prepare(png, s.max_image_pixels).astype(np.float32)[None, ..., None] / 255.0
        right += int(np.argmax(model.predict(x, verbose=0)[0])) == label
    wall = time.perf_counter() - t0
    return {"images": len(pngs), "images_per_s": len(pngs) / wall, "ms_per_image": wall / len(pngs) * 1e3,
            "accuracy": right / len(pngs)}


def in_child(fn, *args):
    """Run fn(*args) in a fresh spawned process and return its result."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=SPAWN) as ex:
        return ex.submit(fn, *args).result()


def one_task_peer(svc: Service, pngs: list[bytes], labels: np.ndarray, processes: int, log_dir: Path) -> dict:
    env = {**os.environ, "REDIS_URL": svc.redis_url, "WORKER_PROCESSES": str(processes), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(PEERS_DIR)])}
    celery = str(Path(sys.executable).parent / "celery")
    cmd = [celery, "-A", "one_task_per_image", "worker", "-Q", "bench_one_per_image", "-c", str(processes),
           "--without-gossip", "--without-mingle", "-n", "bench_one@%h", "--loglevel", "WARNING"]
    with open(log_dir / "one_task_worker.log", "ab") as logf:
        proc = subprocess.Popen(cmd, cwd=PEERS_DIR, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    sys.path.insert(0, str(PEERS_DIR))
    os.environ["REDIS_URL"] = svc.redis_url
    try:
        import importlib

        get_settings.cache_clear()
        peer = importlib.import_module("one_task_per_image")
        peer.app.conf.broker_url = peer.app.conf.result_backend = svc.redis_url
        from celery.result import ResultSet

        b64 = [base64.b64encode(p).decode() for p in pngs]
        warm = ResultSet([peer.predict_one.delay(b64[i % len(b64)]) for i in range(4 * processes)])
        warm.join_native(timeout=120)
        t0 = time.perf_counter()
        results = ResultSet([peer.predict_one.delay(s) for s in b64])
        t_sent = time.perf_counter()
        values = results.join_native(timeout=600)
        wall = time.perf_counter() - t0
        acc = float(np.mean([v["digit"] == labels[i] for i, v in enumerate(values)]))
        # round trip of one task at a time (latency of the naive design)
        single = []
        for i in range(min(50, len(b64))):
            t = time.perf_counter()
            peer.predict_one.delay(b64[i]).get(timeout=30)
            single.append((time.perf_counter() - t) * 1e3)
        # let go of the results while Redis is up (AsyncResult.__del__ talks to the result backend)
        del results, warm
        import gc

        gc.collect()
        return {"images": len(pngs), "images_per_s": len(pngs) / wall, "submit_s": t_sent - t0, "accuracy": acc,
                "processes": processes, "round_trip_p50_ms": pct(single, 50)}
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM a process group started with start_new_session, SIGKILL if it lingers."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def litserve_peer(bodies: list[bytes], labels: list[int], n: int, concurrencies: list[int], log_dir: Path,
                  fast_queue: bool) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "LITSERVE_DISABLE_TELEMETRY": "1"}
    cmd = [sys.executable, str(PEERS_DIR / "litserve_server.py"), "--port", str(port)]
    if fast_queue:
        cmd.append("--fast-queue")
    with open(log_dir / f"litserve{'_fast' if fast_queue else ''}.log", "ab") as logf:
        proc = subprocess.Popen(cmd, cwd=log_dir, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"LitServe exited with {proc.returncode}; see {log_dir}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if time.time() > deadline:
                raise RuntimeError("LitServe did not become healthy in 90 s")
            time.sleep(0.3)
        rows = []
        for c in concurrencies:
            http_load(base, "/predict", bodies, min(100, n), c, labels)  # warm-up
            rows.append(http_load(base, "/predict", bodies, n, c, labels))
        return {"fast_queue": fast_queue, "rows": rows}
    finally:
        stop_group(proc)


# ------------------------------------------------------------------------------------------------
# 6. resources
# ------------------------------------------------------------------------------------------------
class RssSampler(threading.Thread):
    """Samples the RSS of some processes every `interval` seconds until stopped."""

    def __init__(self, procs: list, interval: float = 0.1):
        super().__init__(daemon=True)
        self.procs, self.interval = procs, interval
        self.samples: list[tuple[float, int, int]] = []  # (t, total rss, max single rss)
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            vals = []
            for p in self.procs:
                with contextlib.suppress(Exception):
                    vals.append(p.memory_info().rss)
            if vals:
                self.samples.append((time.time(), sum(vals), max(vals)))
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()


def resources(svc: Service, x: np.ndarray, n_big: int, tmp: Path) -> dict:
    out: dict = {}
    rss = svc.rss()
    out["worker_rss"] = {k: v for k, v in rss.items() if k in ("bulk", "interactive")}
    out["redis_rss"] = rss.get("redis")
    log(f"resources: building a ZIP of {n_big:,} shifted MNIST digits")
    t = time.perf_counter()
    big_pngs = shifted_pngs(x, n_big)
    png_mean = sum(len(b) for b in big_pngs) / n_big
    big_zip = write_zip(tmp / "big.zip", big_pngs)
    del big_pngs
    out["big_zip"] = {"images": n_big, "bytes": big_zip.stat().st_size, "build_s": time.perf_counter() - t}
    web = svc.processes()["web"]
    before = {p.pid: p.memory_info().rss for p in web}
    # Pause the bulk worker so the images stay queued: Redis memory per queued image.
    svc.stack.stop("bulk")
    time.sleep(0.5)
    used0 = svc.redis.info("memory")["used_memory"]
    sampler = RssSampler(web, 0.05)
    sampler.start()
    t0 = time.time()
    status, job = upload_file(svc.url, big_zip)
    upload_s = time.time() - t0
    sampler.stop()
    if status != 202:
        raise RuntimeError(f"100k upload answered {status}: {job}")
    used1 = svc.redis.info("memory")["used_memory"]
    time.sleep(2.0)
    after = {p.pid: p.memory_info().rss for p in web}
    peak_total = max(s[1] for s in sampler.samples)
    out["web"] = {
        "before_total": sum(before.values()), "peak_total": peak_total, "after_total": sum(after.values()),
        "before_max": max(before.values()), "peak_max": max(s[2] for s in sampler.samples),
        "after_max": max(after.values()), "upload_s": upload_s, "samples": len(sampler.samples),
        "processes": len(web),
    }
    out["web"]["growth"] = out["web"]["peak_total"] - out["web"]["before_total"]
    out["redis_queued"] = {"images": n_big, "used_before": used0, "used_after": used1,
                           "bytes_per_image": (used1 - used0) / n_big,
                           "png_bytes_per_image": png_mean}
    log(f"  web RSS {mb(out['web']['before_total'])} -> peak {mb(peak_total)} -> {mb(out['web']['after_total'])}; "
        f"Redis {out['redis_queued']['bytes_per_image']:.0f} B per queued image; upload {upload_s:.1f} s")
    # Resume: the queued 100k drain with a full queue (sustained rate, measured from the first result).
    svc.stack.start("bulk")
    first: dict = {}

    def progress(j):
        if j["done"] > 0 and "t" not in first:
            first.update(t=time.time(), done=j["done"])

    cpu0 = svc.cpu()
    t_resume = time.time()
    job = poll_job(svc.url, job["id"], timeout=900, interval=0.2, on_progress=progress)
    SENT["images"] += job["total"]
    end = parse_iso(job.get("finished_at")) or time.time()
    out["drain"] = {"images": job["total"], "done": job["done"], "failed": job["failed"], "status": job["status"],
                    "images_per_s": (job["total"] - first.get("done", 0)) / max(end - first.get("t", t_resume), 1e-6),
                    "cpu_cores": cpu_delta(cpu0, svc.cpu(), time.time() - t_resume)}
    out["web"]["after_job_total"] = sum(p.memory_info().rss for p in web if p.is_running())
    used2 = svc.redis.info("memory")["used_memory"]
    out["redis_stored"] = {"used_after_job": used2, "bytes_per_image": (used2 - used0) / n_big}
    rss = svc.rss()
    out["worker_rss_after_100k"] = {k: v for k, v in rss.items() if k in ("bulk", "interactive")}
    out["redis_rss_after"] = rss.get("redis")
    http_json("DELETE", f"{svc.url}/api/v1/jobs/{job['id']}")
    log(f"  drained {job['total']:,} queued images at {out['drain']['images_per_s']:,.0f} images/s ({job['status']})")
    return out


# ------------------------------------------------------------------------------------------------
# profiling (optional)
# ------------------------------------------------------------------------------------------------
def py_spy_exe() -> str | None:
    """The py-spy executable (PATH or beside this Python), or None."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def py_spy(pids: dict[str, int], out_dir: Path, seconds: float, gil: tuple[str, ...] = ()) -> list[subprocess.Popen]:
    """py-spy record each pid (and its children); names in `gil` sample only threads holding the GIL, which
    leaves out threads blocked on sockets (py-spy counts some of those as busy otherwise)."""
    exe = py_spy_exe()
    procs = []
    for name, pid in pids.items():
        procs.append(subprocess.Popen([exe, "record", "--pid", str(pid), "--subprocesses", "--rate", "200",
                                       "--duration", str(int(seconds)), "--format", "raw", "--nonblocking",
                                       *(["--gil"] if name in gil else []),
                                       "--output", str(out_dir / f"{name}.txt")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


PROJECT_FRAMES = ("(web/", "(worker/", "(digitflow/", "Celery.send_task", "Session.run", "ZipFile.__init__")


def summarise_profile(path: Path, top: int = 10) -> dict:
    """From py-spy's collapsed stacks: the project's own frames (and a few library entry points) by inclusive
    share of the samples, and the leaf frames by self share."""
    self_c, incl_c, total = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        frames = stack.split(";")
        total += c
        self_c[frames[-1]] += c
        for f in set(frames):
            incl_c[f] += c
    if not total:
        return {"samples": 0, "inclusive": [], "self": []}
    ours = [(f, 100 * c / total) for f, c in incl_c.most_common() if any(k in f for k in PROJECT_FRAMES)]
    return {"samples": total, "inclusive": ours[:top],
            "self": [(f, 100 * c / total) for f, c in self_c.most_common(6)]}


def profile_run(svc: Service, zip_path: Path, bodies: list[bytes], out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    pids = {name: p.pid for name, p in svc.stack.procs.items()}
    spies = py_spy({"bulk": pids["bulk"], "web_bulk": pids["web"]}, out_dir, 12, gil=("web_bulk",))
    time.sleep(1.0)
    bulk_run(svc, zip_path, None)
    for s in spies:
        s.wait()
    spies = py_spy({"interactive": pids["interactive"], "web_drawings": pids["web"]}, out_dir, 6,
                   gil=("interactive", "web_drawings"))
    time.sleep(1.0)
    http_load(svc.url, "/api/v1/predict", bodies, 1500, 8)
    for s in spies:
        s.wait()
    return {name: summarise_profile(out_dir / f"{name}.txt")
            for name in ("bulk", "web_bulk", "interactive", "web_drawings") if (out_dir / f"{name}.txt").exists()}


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------
def frontend_child(pngs: list[bytes], repeats: int, smoke: bool) -> list[dict]:
    """CPU time per image of decode + front end (digitflow.imaging.normalise_bytes), median of repeats."""
    from distortions import dark_on_light, phone_photo, tight_16

    from digitflow.imaging import ImageError, normalise_bytes
    from model_training.data import load_test_split

    def one(d: bytes) -> None:
        with contextlib.suppress(ImageError):  # a refused image costs its time too
            normalise_bytes(d)

    x, _ = load_test_split(mnist_dir())
    rng = np.random.default_rng(0)
    n = 50 if smoke else 2000
    cases = {
        "28x28 MNIST test PNGs (light ink on black, already fitted)": pngs[:n],
        "28x28 scans, dark ink on light paper (MNIST inverted)": [dark_on_light(d, rng) for d in x[:n]],
        "16x16 tight crops stretched to the box (postal-scan style)": [tight_16(d, rng) for d in x[:n]],
        "12 MP phone photo, JPEG (4032x3024)": [phone_photo(d, rng, size=(3024, 4032)) for d in x[: 3 if smoke else 20]],
    }
    rows = []
    for name, data in cases.items():
        one(data[0])  # warm
        runs = []
        for _ in range(repeats):
            start = time.process_time()
            for d in data:
                one(d)
            runs.append((time.process_time() - start) * 1000 / len(data))
        rows.append({"case": name, "images": len(data), "bytes": int(np.mean([len(d) for d in data])),
                     "cpu_ms": statistics.median(runs), "runs": runs})
    return rows


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def targets(R: dict) -> list[list]:
    T = TARGETS
    rows = []
    bulk, pipe = R.get("bulk"), R.get("pipeline")
    if bulk and pipe:
        ratio = bulk["images_per_s"] / pipe["cores"]["images_per_s"]
        rows.append(["bulk / in-process pipeline", f">= {T['bulk_ratio_min']} (aim {T['bulk_ratio_aim']})",
                     f"{ratio:.2f}x", verdict(ratio >= T["bulk_ratio_min"])])
    if bulk:
        rows.append(["bulk images/s (shipped model)", f">= {T['bulk_ips_min']:,} (aim {T['bulk_ips_aim']:,})",
                     f0(bulk["images_per_s"]), verdict(bulk["images_per_s"] >= T["bulk_ips_min"])])
    d = {r["concurrency"]: r for r in R.get("drawings", [])}
    if 1 in d:
        rows.append(["drawing p50 at concurrency 1", f"<= {T['p50_max_ms']} ms", f"{d[1]['p50_ms']:.1f} ms",
                     verdict(d[1]["p50_ms"] <= T["p50_max_ms"])])
        rows.append(["drawing p99 at concurrency 1", f"<= {T['p99_max_ms']} ms", f"{d[1]['p99_ms']:.1f} ms",
                     verdict(d[1]["p99_ms"] <= T["p99_max_ms"])])
    lit = (R.get("peers") or {}).get("litserve")
    if 1 in d and lit:
        l1 = {r["concurrency"]: r for r in lit["rows"]}.get(1)
        if l1:
            rows.append(["drawing p50 / p99 below LitServe's (aim)", f"{l1['p50_ms']:.1f} / {l1['p99_ms']:.1f} ms",
                         f"{d[1]['p50_ms']:.1f} / {d[1]['p99_ms']:.1f} ms",
                         verdict(d[1]["p50_ms"] < l1["p50_ms"] and d[1]["p99_ms"] < l1["p99_ms"])])
    if 32 in d:
        rows.append(["predictions/s at concurrency 32", f">= {T['c32_rps_min']} (aim {T['c32_rps_aim']:,})",
                     f"{f0(d[32]['rps'])} (load generator: {d[32]['client_cpu_cores']:.2f} cores)",
                     verdict(d[32]["rps"] >= T["c32_rps_min"])])
    peers = R.get("peers") or {}
    if bulk and peers.get("keras_loop"):
        r = bulk["images_per_s"] / peers["keras_loop"]["images_per_s"]
        rows.append(["bulk vs per-image model.predict loop", f">= {T['vs_keras_loop']}x", f"{r:,.0f}x",
                     verdict(r >= T["vs_keras_loop"])])
    if bulk and peers.get("one_task"):
        r = bulk["images_per_s"] / peers["one_task"]["images_per_s"]
        rows.append(["bulk vs one Celery task per image", f">= {T['vs_one_task']}x", f"{r:,.1f}x",
                     verdict(r >= T["vs_one_task"])])
    png = next((r for r in R.get("frontend", []) if r["case"].startswith("28x28 MNIST")), None)
    photo = next((r for r in R.get("frontend", []) if r["case"].startswith("12 MP")), None)
    if png:
        rows.append(["front end: CPU per 28x28 PNG (issue 13)", f"<= {T['png28_cpu_ms']} ms", f"{png['cpu_ms']:.3f} ms",
                     verdict(png["cpu_ms"] <= T["png28_cpu_ms"])])
    if photo:
        r = photo
        rows.append(["front end: CPU per 12 MP JPEG (issue 13)", f"<= {T['jpeg12mp_cpu_ms']} ms", f"{r['cpu_ms']:.1f} ms",
                     verdict(r["cpu_ms"] <= T["jpeg12mp_cpu_ms"])])
    res = R.get("resources")
    if res:
        worst = max(rss for k in ("bulk", "interactive") for _, _, rss in res["worker_rss_after_100k"].get(k, []))
        rows.append(["worker RSS (largest process, model loaded)", f"<= {T['worker_rss_mb']} MB", mb(worst),
                     verdict(worst <= T["worker_rss_mb"] * 2**20)])
        g = res["web"]["growth"]
        rows.append(["web RSS growth through the 100k-image ZIP", f"<= {T['web_growth_mb']} MB", mb(g),
                     verdict(g <= T["web_growth_mb"] * 2**20)])
    return rows


def targets_16(R: dict) -> list[list]:
    """Issue 16's targets: the drawing path against LitServe in the same run, bulk against the pipeline."""
    rows = []
    d = {r["concurrency"]: r for r in R.get("drawings", [])}
    lit = (R.get("peers") or {}).get("litserve")
    lr = {r["concurrency"]: r for r in lit["rows"]} if lit else {}
    if 1 in d and 1 in lr:
        ratio = d[1]["p50_ms"] / lr[1]["p50_ms"]
        rows.append(["drawing p50 at concurrency 1 / LitServe's", "<= 1.0x (aim 0.8x)",
                     f"{ratio:.2f}x ({d[1]['p50_ms']:.1f} / {lr[1]['p50_ms']:.1f} ms)", verdict(ratio <= 1.0)])
    if 32 in d and 32 in lr:
        ratio = d[32]["rps"] / lr[32]["rps"]
        rows.append(["predictions/s at concurrency 32 / LitServe's", ">= 1.0x (aim 1.5x)",
                     f"{ratio:.2f}x ({f0(d[32]['rps'])} / {f0(lr[32]['rps'])})", verdict(ratio >= 1.0)])
    if 1 in d:
        ratio = d[1]["p99_ms"] / d[1]["p50_ms"]
        rows.append(["drawing p99 / p50 at concurrency 1", "<= 2x", f"{ratio:.2f}x", verdict(ratio <= 2.0)])
        calls = d[1].get("redis_calls_per_request")
        if calls is not None:
            rows.append(["Redis commands per drawing (concurrency 1)", "<= 8", f"{calls:.1f}", verdict(calls <= 8)])
    bulk, pipe = R.get("bulk"), R.get("pipeline")
    if bulk and pipe:
        ratio = bulk["images_per_s"] / pipe["cores"]["images_per_s"]
        rows.append(["bulk 10k ZIP / in-process pipeline", ">= 0.85x (aim 0.9x)", f"{ratio:.2f}x",
                     verdict(ratio >= 0.85)])
    return rows


def render(R: dict, args) -> str:
    m = R["machine"]
    card = R["model"]
    L = ["# Benchmarks", ""]
    L += [f"Generated by `scripts/bench.py{' --smoke' if args.smoke else ''}` on {R['date']} "
          f"(whole run: {R['total_s'] / 60:.1f} min). Re-run with `.venv/bin/python scripts/bench.py`; "
          "every ratio below compares numbers measured in this same run on this same machine.", ""]
    if args.smoke:
        L += ["**Smoke run** (tiny samples): the numbers only show that the script works.", ""]
    L += ["## Machine", ""]
    L += [md_table(["", ""], [
        ["CPU", m["cpu"]],
        ["cores", f"{m['cores']} ({m['usable_cores']} usable by this process); no GPU used"],
        ["RAM", mb(m["ram_bytes"]) if m["ram_bytes"] else "unknown"],
        ["OS", m["os"]],
        ["Python", m["python"]],
        ["redis-server", m["redis_server"]],
        ["libraries", ", ".join(f"{k} {v}" for k, v in m["packages"].items())],
        ["load average at start / end", f"{m['loadavg_start'][0]:.2f} / {R['loadavg_end'][0]:.2f} (1 min)"],
        ["model", f"{card['architecture']} {card['version']}, {card['macs_per_image'] / 1e6:.1f} M MAC/image, "
                  f"{card['parameters']:,} parameters, test accuracy {card['test_accuracy']:.4f}"],
        ["service", "the stack of scripts/stack.py: redis-server (append-only file, everysec), bulk worker "
                    "(2 processes), drawing worker (python -m worker.drawings: Redis Stream consumer), gunicorn "
                    f"({R.get('web_processes', 1)} process(es) x 32 threads); rate limit off"
                    if R.get("owned") else f"running service at {R.get('url')}"],
    ])]
    L += ["", "## Targets (issue 7)", ""]
    rows = targets(R)
    L += [md_table(["target", "wanted", "measured", ""], rows) if rows else "(sections not run)"]
    rows = targets_16(R)
    if rows:
        L += ["", "## Targets (issue 16: ratios in this run)", "", md_table(["target", "wanted", "measured", ""], rows)]

    if "engine" in R:
        L += ["", "## 1. Engine: model only, inputs already normalised", "",
              "Median time per call over repeated calls (random inputs; speed does not depend on them). "
              "ONNX Runtime with 1 intra-op thread is what each bulk worker process uses (2 processes share "
              "the 2 cores); all-core threads is what the interactive worker uses.", ""]
        by: dict = {}
        for r in R["engine"]:
            by.setdefault((r["model"], r["backend"], r["threads"]), {})[r["batch"]] = r
        batches = sorted({r["batch"] for r in R["engine"]})
        head = ["model", "backend", "threads"] + [f"batch {b}: images/s (ms/call)" for b in batches]
        body = [[k[0], k[1], k[2]] + [f"{f0(v[b]['images_per_s'])} ({v[b]['ms_per_call']:.2f} ms)" if b in v else "–"
                                      for b in batches] for k, v in by.items()]
        L += [md_table(head, body)]

    if "frontend" in R:
        L += ["", "## 1b. Front end alone: decode + `digitflow/frontend`, CPU per image", "",
              "`digitflow.imaging.normalise_bytes` in one process (process CPU time, so the other core's load "
              "does not count); median of the repeats. The 28x28 PNG case is what bulk jobs of MNIST-style "
              "digits pay per image; the photo is decoded at 1/8 size by libjpeg's DCT scaling.", ""]
        L += [md_table(["input", "images", "mean file size", "CPU ms per image", "runs"],
                       [[r["case"], f"{r['images']:,}", f"{r['bytes']:,} B", f"{r['cpu_ms']:.3f}",
                         ", ".join(f"{v:.3f}" for v in r["runs"])] for r in R["frontend"]])]

    if "pipeline" in R:
        p = R["pipeline"]
        L += ["", "## 2. In-process pipeline (the ceiling)", "",
              f"`worker.pipeline.run_batch` (decode + normalise + model, chunks of {get_settings().chunk_size}, "
              f"model batches of {get_settings().batch_size}) on the same {p['cores']['images']:,} MNIST test PNGs, "
              "one process per core (multiprocessing, one ONNX thread each), no HTTP, Redis or Celery. "
              "Median of the runs.", ""]
        rows = [[f"{v['processes']}", f0(v["images_per_s"]), ", ".join(f0(r) for r in v["runs"]),
                 f"{v['accuracy']:.4f}"] for v in (p.get("one"), p["cores"]) if v]
        L += [md_table(["processes", "images/s", "runs", "accuracy"], rows)]

    if "bulk" in R:
        b = R["bulk"]
        ratio = b["images_per_s"] / R["pipeline"]["cores"]["images_per_s"] if "pipeline" in R else None
        L += ["", "## 3. Bulk end to end", "",
              f"A ZIP of {b['images']:,} MNIST test PNGs ({R['zip_bytes'] / 2**20:.1f} MB) streamed to "
              "`POST /api/v1/jobs` and polled (`GET /api/v1/jobs/{id}` every 50 ms) until it finished; time from the "
              "first byte of the upload to the job's `finished_at`. Median of the runs.", ""]
        L += [md_table(["images/s", "runs", "ratio to in-process pipeline", "upload (until 202)", "total",
                        "accuracy of returned results", "missing"],
                       [[f0(b["images_per_s"]), ", ".join(f0(r) for r in b["runs"]),
                         f"{ratio:.2f}x" if ratio else "–", f"{b['upload_s']:.2f} s", f"{b['wall_s']:.2f} s",
                         f"{b.get('accuracy', float('nan')):.4f}", b.get("missing", "–")]])]
        L += ["", "CPU used during the median run (cores, averaged over its duration) and per image:", ""]
        L += [md_table(["process", "cores busy", "CPU ms per image"],
                       [[k, f"{v:.2f}", f"{b['cpu_s_per_image'][k] * 1e3:.3f}"] for k, v in b["cpu_cores"].items()])]
        if b.get("redis_calls_per_image") is not None:
            L += ["", f"Redis per image: {b['redis_calls_per_image']:.2f} commands, "
                      f"{b['redis_in_bytes_per_image']:,.0f} bytes in, {b['redis_out_bytes_per_image']:,.0f} bytes out "
                      "(INFO commandstats / stats deltas over the run, including polling)."]

    if "drawings" in R:
        L += ["", "## 4. Single drawings end to end", "",
              f"`POST /api/v1/predict` with the draw page's body (JSON data URL of a 280x280 PNG, a test digit drawn "
              f"dark on white), {R['drawings'][0]['requests']:,} requests per concurrency level after a warm-up, from "
              "threads with one keep-alive connection each. The load generator runs on the same cores; its CPU is "
              "shown in cores (1.00 = one core busy).", ""]
        L += [md_table(["concurrency", "p50", "p90", "p99", "max", "requests/s", "statuses", "accuracy",
                        "load generator CPU", "server CPU (cores)"],
                       [[r["concurrency"], f"{r['p50_ms']:.1f} ms", f"{r['p90_ms']:.1f} ms", f"{r['p99_ms']:.1f} ms",
                         f"{r['max_ms']:.1f} ms", f0(r["rps"]), json.dumps(r["statuses"]),
                         f2(r["accuracy"]) if r["accuracy"] is not None else "–", f"{r['client_cpu_cores']:.2f}",
                         ", ".join(f"{k} {v:.2f}" for k, v in r.get("server_cpu", {}).items())]
                        for r in R["drawings"]])]
        calls = [r.get("redis_calls_per_request") for r in R["drawings"] if r.get("redis_calls_per_request")]
        if calls:
            L += ["", f"Redis commands per prediction (web, worker and broker together): "
                      f"{', '.join(f'{v:.1f}' for v in calls)} at concurrency "
                      f"{', '.join(str(r['concurrency']) for r in R['drawings'])}."]

    peers = R.get("peers")
    if peers:
        L += ["", "## 5. Naive peers on the same images and machine", ""]
        rows = []
        bulk_ips = R["bulk"]["images_per_s"] if "bulk" in R else None
        if peers.get("keras_loop"):
            k = peers["keras_loop"]
            rows.append(["per-image Keras `model.predict` loop (decode + normalise + predict, one process)",
                         f"{k['images']:,}", f0(k["images_per_s"]), f"{k['ms_per_image']:.1f} ms per image",
                         f"{bulk_ips / k['images_per_s']:,.0f}x" if bulk_ips else "–"])
        if peers.get("one_task"):
            o = peers["one_task"]
            rows.append([f"one Celery task per image ({o['processes']} worker processes, result backend Redis)",
                         f"{o['images']:,}", f0(o["images_per_s"]),
                         f"one task's round trip p50 {o['round_trip_p50_ms']:.1f} ms",
                         f"{bulk_ips / o['images_per_s']:,.1f}x" if bulk_ips else "–"])
        if rows:
            L += ["Bulk throughput (service column: the bulk end-to-end rate of section 3 divided by the peer's):", ""]
            L += [md_table(["peer", "images", "images/s", "note", "service / peer"], rows)]
        lit = peers.get("litserve")
        if lit:
            ours = {r["concurrency"]: r for r in R.get("drawings", [])}
            L += ["", f"LitServe {m['packages']['litserve']} with dynamic batching (max batch 64, timeout 1 ms, "
                      f"{'ZeroMQ' if lit['fast_queue'] else 'multiprocessing'} queue, 1 API server + 1 inference "
                      "worker, the same Engine with all-core threads and the same decode + normalise; "
                      "`scripts/bench_peers/litserve_server.py`), same bodies and load generator as section 4:", ""]
            body = []
            for r in lit["rows"]:
                o = ours.get(r["concurrency"])
                body.append([r["concurrency"], f"{r['p50_ms']:.1f} ms", f"{r['p90_ms']:.1f} ms", f"{r['p99_ms']:.1f} ms",
                             f0(r["rps"]), json.dumps(r["statuses"]), f"{r['client_cpu_cores']:.2f}",
                             f"{o['p50_ms']:.1f} / {o['p99_ms']:.1f} ms" if o else "–",
                             f"{o['rps'] / r['rps']:.2f}x" if o else "–"])
            L += [md_table(["concurrency", "LitServe p50", "p90", "p99", "requests/s", "statuses", "load gen. CPU",
                            "service p50 / p99", "service / LitServe req/s"], body)]
            other = peers.get("litserve_other")
            if other:
                L += ["", f"The other LitServe queue ({'ZeroMQ' if other['fast_queue'] else 'multiprocessing'}): " +
                      "; ".join(f"c{r['concurrency']}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                                f"{f0(r['rps'])} req/s" for r in other["rows"]) +
                      ". The faster of the two is shown above."]

    res = R.get("resources")
    if res:
        L += ["", "## 6. Resources", ""]
        rows = []
        for key, label in (("worker_rss", "after the bulk runs"), ("worker_rss_after_100k", "after the 100k job")):
            for name, procs in res[key].items():
                rows.append([name, label, ", ".join(f"{role} {mb(rss)}" for _, role, rss in procs)])
        L += ["Worker RSS with the model loaded (a Celery worker is a main process plus, for the bulk worker, its "
              "pool processes, which load the model):", ""]
        L += [md_table(["worker", "when", "RSS per process"], rows)]
        w = res["web"]
        z = res["big_zip"]
        L += ["", f"Web (gunicorn: {w['processes']} processes, master and worker) RSS through a "
                  f"{z['images']:,}-image ZIP ({z['bytes'] / 2**20:.1f} MB; MNIST test digits with random shifts of up "
                  f"to 2 px), streamed from a file on disk; sampled every 50 ms ({w['samples']} samples) during the "
                  f"{w['upload_s']:.1f} s upload:", ""]
        L += [md_table(["", "before", "peak during", "after (2 s)", "after the job finished", "growth (peak - before)"],
                       [["all web processes", mb(w["before_total"]), mb(w["peak_total"]), mb(w["after_total"]),
                         mb(w["after_job_total"]), mb(w["growth"])],
                        ["largest web process", mb(w["before_max"]), mb(w["peak_max"]), mb(w["after_max"]), "–",
                         mb(w["peak_max"] - w["before_max"])]])]
        q = res["redis_queued"]
        L += ["", f"Redis memory per queued image: the bulk worker stopped, the {q['images']:,} images uploaded, "
                  f"`INFO memory` used_memory {mb(q['used_before'])} -> {mb(q['used_after'])}: "
                  f"**{q['bytes_per_image']:,.0f} bytes per queued image** (the PNG itself averages "
                  f"{q['png_bytes_per_image']:,.0f} bytes; the rest is the hash field, the file name in the "
                  "names list and the chunk's task message)."]
        st = res.get("redis_stored")
        if st:
            L += ["", f"Once the job finished (inputs deleted, results kept until the job expires): used_memory "
                      f"{mb(st['used_after_job'])}, **{st['bytes_per_image']:,.0f} bytes per finished image** (the "
                      "result JSON with 10 probabilities, the 784-byte digit the model saw, the file name)."]
        d = res["drain"]
        L += ["", f"With the worker started again, the {d['images']:,} queued images drained at "
                  f"**{f0(d['images_per_s'])} images/s** ({d['status']}, {d['failed']} failed; rate from the first "
                  "result to the last, with the queue full all the time). CPU (cores): " +
                  ", ".join(f"{k} {v:.2f}" for k, v in d["cpu_cores"].items()) + "."]

    sc = R.get("scaling")
    if sc:
        L += ["", "## 7. Scaling: bulk worker processes", "",
              f"The bulk job of section 3 ({R['bulk']['images']:,} images) with the bulk worker restarted at "
              "1 and 2 processes (`-c N`, one ONNX thread each). Median of the runs.", ""]
        base1 = sc.get(1, {}).get("images_per_s")
        L += [md_table(["worker processes", "images/s", "runs", "speed-up", "CPU (cores)"],
                       [[n, f0(v["images_per_s"]), ", ".join(f0(r) for r in v["runs"]),
                         f"{v['images_per_s'] / base1:.2f}x" if base1 else "–",
                         ", ".join(f"{k} {c:.2f}" for k, c in v["cpu_cores"].items())] for n, v in sorted(sc.items())])]
    prof = R.get("profile")
    if prof:
        L += ["", "## Profiles (py-spy, during a bulk run and a drawings run)", "",
              "`bulk`: all samples of the bulk worker and its pool processes (ONNX Runtime runs without the GIL); "
              "the others: only samples holding the GIL (Python CPU time, not waits on Redis).", ""]
        for name, p in prof.items():
            L += [f"`{name}` ({p['samples']:,} samples): the project's frames by inclusive share", "",
                  md_table(["frame", "inclusive %"], [[f"`{f}`", f"{v:.1f}"] for f, v in p["inclusive"]]), "",
                  "Top self time: " + "; ".join(f"`{f}` {v:.1f}%" for f, v in p["self"]) + "", ""]
    mc = R.get("metrics_check")
    if mc:
        L += ["", "## /metrics against this run", "",
              "The service's own counters (`GET /metrics`, scraped when the service was up and again at the end) "
              "against what this script counted: images in finished bulk jobs plus answered drawings, and "
              "drawings answered 200. Warm-ups included on both sides.", "",
              md_table(["figure", "counted by bench.py", "delta on /metrics", ""],
                       [["`digitflow_images_total` (all outcomes)", f0(mc["images"]["bench"]), f0(mc["images"]["metrics"]),
                         "agrees" if mc["images"]["bench"] == mc["images"]["metrics"] else "**differs**"],
                        ["`digitflow_http_request_duration_seconds_count{route=\"/api/v1/predict\",status=\"200\"}`",
                         f0(mc["predict_200"]["bench"]), f0(mc["predict_200"]["metrics"]),
                         "agrees" if mc["predict_200"]["bench"] == mc["predict_200"]["metrics"] else "**differs**"]])]
    L += ["", "See [scaling.md](scaling.md) for what these numbers mean at 1 million images per hour.", ""]
    return "\n".join(L)


NOTES_BEGIN, NOTES_END = "<!-- notes: kept by scripts/bench.py -->", "<!-- /notes -->"


def kept_notes(path: Path) -> str:
    """The hand-written analysis between the notes markers of the existing report, kept across re-runs."""
    try:
        old = path.read_text()
    except OSError:
        return ""
    start, end = old.find(NOTES_BEGIN), old.find(NOTES_END)
    if start < 0 or end < start:
        return ""
    return "\n" + old[start : end + len(NOTES_END)] + "\n"


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="digitflow benchmarks (see the module docstring)")
    ap.add_argument("--smoke", action="store_true", help="tiny samples, a few seconds per section (CI)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown report path")
    ap.add_argument("--json", default=None, help="also write the raw results as JSON here")
    ap.add_argument("--url", default=None, help="benchmark a running service instead of starting one")
    ap.add_argument("--redis-url", default=None, help="its Redis (for --url: Redis figures and the Celery peer)")
    ap.add_argument("--images", type=int, default=None, help="bulk/pipeline images (default 10,000; smoke 300)")
    ap.add_argument("--requests", type=int, default=None, help="requests per concurrency level (default 1,000)")
    ap.add_argument("--big", type=int, default=100_000, help="images in the resources ZIP")
    ap.add_argument("--profile", default=None, help="py-spy the web and workers; collapsed stacks in this folder")
    args = ap.parse_args(argv)

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if args.profile and not py_spy_exe():
        ap.error("--profile needs py-spy: pip install -e '.[bench]'")
    if args.smoke:
        sections = [s for s in sections if s not in ("resources", "scaling")]
    if args.url and ("resources" in sections or "scaling" in sections):
        log("--url: skipping the resources and scaling sections (they stop and restart workers of the stack)")
        sections = [s for s in sections if s not in ("resources", "scaling")]

    n_images = args.images or (300 if args.smoke else 10_000)
    n_requests = args.requests or (60 if args.smoke else 1000)
    concurrencies = [1, 8] if args.smoke else [1, 8, 32]
    repeats = 1 if args.smoke else 3
    settings = get_settings()
    model_dir = str(settings.model_dir)
    started = time.time()
    R: dict = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
               "model": load_card(model_dir), "smoke": args.smoke}
    cores = R["machine"]["usable_cores"]
    log(f"machine: {R['machine']['cpu']}, {cores} cores; model {R['model']['architecture']} from {model_dir}")

    x, y = load_mnist(n_images)
    pngs = [to_png(d) for d in x]
    bodies = [drawing_body(d) for d in x[:200]]
    body_labels = [int(v) for v in y[:200]]
    tmp = Path(tempfile.mkdtemp(prefix="digitflow-bench-"))
    zip_path = write_zip(tmp / "mnist_test.zip", pngs)
    R["zip_bytes"] = zip_path.stat().st_size
    warm_zip = write_zip(tmp / "warm.zip", pngs[: min(len(pngs), 4 * get_settings().chunk_size)])
    svc: Service | None = None
    failed = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the stack is stopped on SIGTERM too
    try:
        if "engine" in sections:
            log("engine: ONNX Runtime" + ("" if args.smoke else ", Keras and the seed architecture"))
            R["engine"] = in_child(engine_child, model_dir, [1, 32, 256], 0.1 if args.smoke else 0.7,
                                   not args.smoke, not args.smoke)
            for r in R["engine"]:
                log(f"  {r['model']:<36} {r['backend']:<20} t={r['threads']:<10} batch {r['batch']:>3}: "
                    f"{r['images_per_s']:>9,.0f} images/s  {r['ms_per_call']:7.2f} ms/call")
        if "frontend" in sections:
            R["frontend"] = in_child(frontend_child, pngs, repeats, args.smoke)
            for r in R["frontend"]:
                log(f"frontend: {r['case']:<60} {r['cpu_ms']:8.3f} ms CPU/image")
        if "pipeline" in sections:
            R["pipeline"] = {"cores": pipeline_rate(model_dir, pngs, y, cores, repeats)}
            if not args.smoke and cores > 1:
                R["pipeline"]["one"] = pipeline_rate(model_dir, pngs, y, 1, 1)
            for v in R["pipeline"].values():
                log(f"pipeline: {v['processes']} process(es): {v['images_per_s']:,.0f} images/s, "
                    f"accuracy {v['accuracy']:.4f}")
        needs_service = {"bulk", "drawings", "peers", "resources", "scaling"} & set(sections)
        if needs_service:
            log("starting the service" if not args.url else f"using the service at {args.url}")
            svc = Service(args.url, args.redis_url, tmp)
            R["owned"], R["url"] = svc.owned, svc.url
            metrics_before = scrape_metrics(svc.url)
            R["web_processes"] = int(os.environ.get("WEB_PROCESSES") or len(os.sched_getaffinity(0)))
        if "bulk" in sections:
            bulk_run(svc, warm_zip, None)  # warm-up: every worker process loads the model
            log("bulk end to end")
            R["bulk"] = bulk_median(svc, zip_path, y, repeats)
            if "pipeline" in R:
                log(f"  ratio to the in-process pipeline: "
                    f"{R['bulk']['images_per_s'] / R['pipeline']['cores']['images_per_s']:.2f}x")
        if "drawings" in sections:
            R["drawings"] = []
            for c in concurrencies:
                http_load(svc.url, "/api/v1/predict", bodies, min(100, n_requests), c)  # warm-up
                cpu0, t0, info0 = svc.cpu(), time.time(), svc.redis_info()
                r = http_load(svc.url, "/api/v1/predict", bodies, n_requests, c, body_labels)
                r["server_cpu"] = cpu_delta(cpu0, svc.cpu(), time.time() - t0)
                if svc.redis:
                    r["redis_calls_per_request"] = (svc.redis_info()["calls"] - info0["calls"]) / n_requests
                R["drawings"].append(r)
                log(f"drawings c={c}: p50 {r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                    f"{r['rps']:,.0f} req/s, statuses {r['statuses']}, client CPU {r['client_cpu_cores']:.2f} cores")
        if "peers" in sections:
            R["peers"] = peers = {}
            if not args.smoke:
                k = min(500, n_images)
                log(f"peer: per-image Keras model.predict loop on {k} images")
                peers["keras_loop"] = in_child(keras_loop_child, model_dir, pngs[:k], [int(v) for v in y[:k]])
                log(f"  {peers['keras_loop']['images_per_s']:,.1f} images/s "
                    f"({peers['keras_loop']['ms_per_image']:.1f} ms per image)")
            if svc.redis_url:
                k = min(2000 if not args.smoke else 100, n_images)
                log(f"peer: one Celery task per image on {k} images")
                peers["one_task"] = one_task_peer(svc, pngs[:k], y[:k], 2, tmp)
                log(f"  {peers['one_task']['images_per_s']:,.0f} images/s; one task's round trip p50 "
                    f"{peers['one_task']['round_trip_p50_ms']:.1f} ms")
            if not args.smoke:
                lits = []
                for fast in (False, True):
                    log(f"peer: LitServe ({'ZeroMQ' if fast else 'multiprocessing'} queue)")
                    try:
                        lits.append(litserve_peer(bodies, body_labels, n_requests, concurrencies, tmp, fast))
                        for r in lits[-1]["rows"]:
                            log(f"  c={r['concurrency']}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                                f"{r['rps']:,.0f} req/s, statuses {r['statuses']}")
                    except Exception as exc:  # a peer's failure must not lose the service's numbers
                        log(f"  LitServe failed: {exc}")
                if lits:
                    lits.sort(key=lambda v: -sum(r["rps"] for r in v["rows"]))
                    peers["litserve"] = lits[0]
                    if len(lits) > 1:
                        peers["litserve_other"] = lits[1]
        if "resources" in sections:
            R["resources"] = resources(svc, x, args.big, tmp)
        if "scaling" in sections:
            R["scaling"] = {}
            for n in (1, 2):
                log(f"scaling: bulk worker with {n} process(es)")
                svc.restart_bulk(n, threads=1)
                bulk_run(svc, warm_zip, None)
                R["scaling"][n] = bulk_median(svc, zip_path, y, repeats)
            svc.restart_bulk(2)  # as configured by default again
        if args.profile and svc and svc.owned:
            log(f"profiling with py-spy into {args.profile}")
            R["profile"] = profile_run(svc, zip_path, bodies, Path(args.profile))
            for name, p in R["profile"].items():
                log(f"  {name}: " + "; ".join(f"{f} {v:.0f}%" for f, v in p["inclusive"][:6]))
        if svc:  # the service's counters against what this run counted itself
            after = scrape_metrics(svc.url)
            R["metrics_check"] = {k: {"bench": SENT[k] + SENT["predict_200"] * (k == "images"),
                                      "metrics": after[k] - metrics_before[k]} for k in ("images", "predict_200")}
            log("metrics check: " + ", ".join(f"{k} bench {v['bench']:,.0f} /metrics {v['metrics']:,.0f}"
                                              for k, v in R["metrics_check"].items()))
        failed = False
    finally:
        if svc:
            svc.close()
        if failed:  # keep the logs, drop the data
            for f in tmp.glob("*.zip"):
                f.unlink()
            log(f"failed; logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    R["total_s"] = time.time() - started
    R["loadavg_end"] = os.getloadavg()
    report = render(R, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report += kept_notes(out)
    out.write_text(report)
    if args.json:
        Path(args.json).write_text(json.dumps(R, indent=2, default=str))
    print()
    print(report)
    log(f"wrote {out} in {R['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
