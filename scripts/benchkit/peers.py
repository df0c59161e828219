"""5. Naive peers: per-image Keras model.predict loop, one Celery task per image, LitServe."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from stack import free_port

from benchkit.common import ROOT, in_child, log, pct
from benchkit.http import http_load
from benchkit.service import Service, stop_group
from digitflow.settings import get_settings

PEERS_DIR = ROOT / "scripts" / "bench_peers"


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


def peers_section(svc: Service, model_dir: str, pngs: list[bytes], labels: np.ndarray, bodies: list[bytes],
                  body_labels: list[int], n_images: int, n_requests: int, concurrencies: list[int], tmp: Path,
                  smoke: bool) -> dict:
    """Section 5: the Keras loop and LitServe outside a smoke run; the Celery peer where there is a Redis URL."""
    peers: dict = {}
    if not smoke:
        k = min(500, n_images)
        log(f"peer: per-image Keras model.predict loop on {k} images")
        peers["keras_loop"] = in_child(keras_loop_child, model_dir, pngs[:k], [int(v) for v in labels[:k]])
        log(f"  {peers['keras_loop']['images_per_s']:,.1f} images/s "
            f"({peers['keras_loop']['ms_per_image']:.1f} ms per image)")
    if svc.redis_url:
        k = min(2000 if not smoke else 100, n_images)
        log(f"peer: one Celery task per image on {k} images")
        peers["one_task"] = one_task_peer(svc, pngs[:k], labels[:k], 2, tmp)
        log(f"  {peers['one_task']['images_per_s']:,.0f} images/s; one task's round trip p50 "
            f"{peers['one_task']['round_trip_p50_ms']:.1f} ms")
    if not smoke:
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
    return peers
