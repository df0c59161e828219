"""6. Resources: worker RSS; web RSS through a large ZIP; Redis memory per queued image."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import numpy as np

from benchkit.common import log, mb, shifted_pngs, write_zip
from benchkit.http import SENT, http_json, parse_iso, poll_job, upload_file
from benchkit.service import Service, cpu_delta


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
