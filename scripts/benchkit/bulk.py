"""3. Bulk end to end (a ZIP via POST /api/v1/jobs, polled to completion); 7. scaling."""

from __future__ import annotations

import itertools
import math
import statistics
import time
from pathlib import Path

import numpy as np

from benchkit.common import log
from benchkit.http import SENT, fetch_digits, http_json, parse_iso, poll_job, upload_file
from benchkit.pipeline import Pipeline
from benchkit.service import Service, cpu_delta
from digitflow.cli.client import POLL_SECONDS


def bulk_run(svc: Service, zip_path: Path, labels: np.ndarray | None, timeout: float = 600) -> dict:
    cpu0, info0 = svc.cpu(), svc.redis_info()
    t0 = time.time()
    status, job = upload_file(svc.url, zip_path)
    t_uploaded = time.time()
    if status != 202:
        raise RuntimeError(f"upload answered {status}: {job}")
    job = poll_job(svc.url, job["id"], timeout, interval=POLL_SECONDS)  # as `digitflow submit` polls
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


def median_run(runs: list[dict]) -> dict:
    for r in runs:
        log(f"  bulk {r['images']} images: {r['images_per_s']:,.0f} images/s (upload {r['upload_s']:.2f} s, "
            f"total {r['wall_s']:.2f} s), accuracy {r.get('accuracy', float('nan')):.4f}")
    best = sorted(runs, key=lambda r: r["images_per_s"])[len(runs) // 2]
    return {**best, "runs": [r["images_per_s"] for r in runs]}


def bulk_median(svc: Service, zip_path: Path, labels: np.ndarray, repeats: int) -> dict:
    return median_run([bulk_run(svc, zip_path, labels) for _ in range(repeats)])


def bulk_section(svc: Service, zip_path: Path, labels: np.ndarray, repeats: int, pipeline: dict | None,
                 paired: Pipeline | None = None) -> dict:
    """Section 3: the first job after the service started (no warm-up: the workers load their models when they
    start, and /readyz waited for that), then `repeats` later runs. With `paired`, a pass of the in-process
    pipeline runs before the first job and after every job, and each job's ratio is its rate over the geometric
    mean of the passes right before and right after it: this VM's speed drifts by a third within a run, and
    seconds apart on both sides is the closest comparison there is."""
    log("bulk end to end")
    passes = [paired.run()[0]] if paired is not None else []
    first = bulk_run(svc, zip_path, labels)
    if paired is not None:
        passes.append(paired.run()[0])
    log(f"  first job after the start: {first['images_per_s']:,.0f} images/s (total {first['wall_s']:.2f} s)")
    runs = []
    for _ in range(repeats):
        runs.append(bulk_run(svc, zip_path, labels))
        if paired is not None:
            passes.append(paired.run()[0])
    out = median_run(runs)
    out["first"] = {k: first[k] for k in ("images_per_s", "wall_s", "upload_s")}
    log(f"  first job / median of the later ones: {first['images_per_s'] / out['images_per_s']:.2f}x")
    if passes:
        around = [math.sqrt(a * b) for a, b in itertools.pairwise(passes)]  # [0] is the first job's
        ratios = [r["images_per_s"] / p for r, p in zip(runs, around[1:], strict=True)]
        out["paired"] = {"pipeline_runs": passes, "ratios": ratios, "ratio": statistics.median(ratios)}
        log(f"  paired with the in-process pipeline: {', '.join(f'{x:.2f}x' for x in ratios)} (median "
            f"{out['paired']['ratio']:.2f}x)")
        out["first"].update(pipeline_images_per_s=around[0], paired_ratio=first["images_per_s"] / around[0])
        log(f"  first job paired: {out['first']['paired_ratio']:.2f}x the pipeline around it, "
            f"{out['first']['paired_ratio'] / out['paired']['ratio']:.2f}x the later runs' median")
    elif pipeline is not None:
        log(f"  ratio to the in-process pipeline: "
            f"{out['images_per_s'] / pipeline['cores']['images_per_s']:.2f}x")
    return out


def scaling_section(svc: Service, warm_zip: Path, zip_path: Path, labels: np.ndarray, repeats: int) -> dict:
    """Section 7: the bulk rate with the bulk worker restarted at 1 and 2 processes (one ONNX thread each)."""
    out = {}
    for n in (1, 2):
        log(f"scaling: bulk worker with {n} process(es)")
        svc.restart_bulk(n, threads=1)
        bulk_run(svc, warm_zip, None)
        out[n] = bulk_median(svc, zip_path, labels, repeats)
    svc.restart_bulk(2)  # as configured by default again
    return out
