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
  engine     the shipped model in-process, ONNX Runtime and Keras, batch 1/32/256; the seed and wide architectures beside it
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
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

# benchkit (beside this file) puts the repository root and scripts/ on sys.path, before digitflow is imported
from benchkit.bulk import bulk_section, scaling_section
from benchkit.common import ROOT, drawing_body, load_mnist, log, machine, write_zip
from benchkit.drawings import drawings_section
from benchkit.engine import engine_section
from benchkit.frontend import frontend_section
from benchkit.http import metrics_check, scrape_metrics
from benchkit.peers import peers_section
from benchkit.pipeline import Pipeline, pipeline_section
from benchkit.profiles import profile_section, py_spy_exe
from benchkit.report import kept_notes, render
from benchkit.resources import resources
from benchkit.service import Service

from digitflow.contract import load_card
from digitflow.imaging import to_png
from digitflow.settings import get_settings

SECTIONS = ("engine", "frontend", "pipeline", "bulk", "drawings", "peers", "resources", "scaling")


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
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 3; smoke 1)")
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
    repeats = args.repeats or (1 if args.smoke else 3)
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
            R["engine"] = engine_section(model_dir, args.smoke)
        if "frontend" in sections:
            R["frontend"] = frontend_section(pngs, repeats, args.smoke)
        if "pipeline" in sections:
            R["pipeline"] = pipeline_section(model_dir, pngs, y, cores, repeats, args.smoke)
        needs_service = {"bulk", "drawings", "peers", "resources", "scaling"} & set(sections)
        if needs_service:
            log("starting the service" if not args.url else f"using the service at {args.url}")
            svc = Service(args.url, args.redis_url, tmp)
            R["owned"], R["url"] = svc.owned, svc.url
            metrics_before = scrape_metrics(svc.url)
            R["web_processes"] = int(os.environ.get("WEB_PROCESSES") or len(os.sched_getaffinity(0)))
        if "bulk" in sections:
            paired = Pipeline(model_dir, pngs, y, cores) if "pipeline" in sections else None
            try:
                R["bulk"] = bulk_section(svc, zip_path, y, repeats, R.get("pipeline"), paired)
            finally:
                if paired is not None:
                    paired.close()
        if "drawings" in sections:
            R["drawings"] = drawings_section(svc, bodies, body_labels, n_requests, concurrencies)
        if "peers" in sections:
            R["peers"] = peers_section(svc, model_dir, pngs, y, bodies, body_labels, n_images, n_requests,
                                       concurrencies, tmp, args.smoke)
        if "resources" in sections:
            R["resources"] = resources(svc, x, args.big, tmp)
        if "scaling" in sections:
            R["scaling"] = scaling_section(svc, warm_zip, zip_path, y, repeats)
        if args.profile and svc and svc.owned:
            log(f"profiling with py-spy into {args.profile}")
            R["profile"] = profile_section(svc, zip_path, bodies, Path(args.profile))
        if svc:  # the service's counters against what this run counted itself
            R["metrics_check"] = metrics_check(metrics_before, scrape_metrics(svc.url))
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
