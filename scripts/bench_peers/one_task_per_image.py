"""Naive peer for the benchmark: one Celery task per image (benchmark only, not part of the service).

The same Celery/Redis set-up, Engine and decode + normalise code as the service's bulk worker, but
every image is its own task on its own queue and its result comes back through the Celery result
backend (Redis), the way a first Celery design would do it. Started by scripts/bench.py:

    cd scripts/bench_peers && celery -A one_task_per_image worker -Q bench_one_per_image -c 2
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache

import numpy as np
from celery import Celery

from digitflow.settings import get_settings
from worker.engine import Engine, default_threads
from worker.pipeline import prepare, record

QUEUE = "bench_one_per_image"
TASK = "bench.one_image"

settings = get_settings()
app = Celery("digitflow_bench_peer", broker=settings.redis_url, backend=settings.redis_url)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    task_routes={TASK: {"queue": QUEUE}},
    result_expires=900,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
)


@lru_cache(maxsize=1)
def engine() -> Engine:
    processes = int(os.environ.get("WORKER_PROCESSES", "0")) or None
    return Engine(settings.model_dir, settings.inference_backend, settings.inference_threads or default_threads(processes))


@app.task(name=TASK)
def predict_one(png_b64: str) -> dict:
    """Decode + normalise one image and run the model on a batch of one."""
    digit = prepare(base64.b64decode(png_b64), settings.max_image_pixels)
    x = digit.astype(np.float32)[None, :, :, None] / 255.0
    return record(engine().predict(x)[0], engine().model["version"])
