"""A worker's own metrics (model call latency, batch size) on METRICS_PORT, summed over its processes.

One path for both workers: prometheus_client in multiprocess mode. The main process picks a fresh
folder at `worker_init`, before the pool forks and before anything imports prometheus_client (the
mode is chosen at import; this module imports it lazily): PROMETHEUS_MULTIPROC_DIR if given (it must be
fresh per start and private to this worker; scripts/stack.py gives one), else a temporary folder,
removed at shutdown. Pool processes write their samples there; the main process serves the sums with
`start_http_server` once the worker is ready. A solo worker, and the drawing worker (worker/drawings.py,
which calls `prepare`, `serve` and `clean_up` itself), run the model in their main process and write there
too. Only histograms: a dead pool process's counts stay in the sums, as counts should, and there are no
live gauges to mark dead. METRICS_PORT=0 (the default) turns all of it off.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from functools import lru_cache

from celery.signals import worker_init, worker_ready, worker_shutdown

from digitflow.settings import get_settings

log = logging.getLogger(__name__)
_made: list[str] = []  # the folder this worker made (removed at shutdown)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@lru_cache(maxsize=1)
def _histograms():
    from prometheus_client import Histogram

    return (
        Histogram("digitflow_model_call_seconds", "Time of one model call (a batch through the engine)",
                  buckets=SECONDS_BUCKETS),
        Histogram("digitflow_model_batch_size", "Images in one model call", buckets=BATCH_BUCKETS),
    )


def model_call(seconds: float, images: int) -> None:
    """Record one model call (worker/pipeline.py)."""
    latency, size = _histograms()
    latency.observe(seconds)
    size.observe(images)


@worker_init.connect
def prepare(**_kwargs) -> None:
    """Before anything imports prometheus_client (and before a pool forks): the samples' folder."""
    if get_settings().metrics_port <= 0:
        return
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        folder = tempfile.mkdtemp(prefix="digitflow-worker-metrics-")
        _made.append(folder)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    os.makedirs(folder, exist_ok=True)


@worker_ready.connect
def serve(**_kwargs) -> None:
    settings = get_settings()
    if settings.metrics_port <= 0:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    _histograms()  # this process's (zero) samples: the families are there before the first model call
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    try:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    except OSError as exc:  # a busy port costs the metrics, not the worker
        log.error("metrics: cannot listen on %s:%d: %s", settings.metrics_host, settings.metrics_port, exc)
        return
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)


@worker_shutdown.connect
def clean_up(**_kwargs) -> None:
    for folder in _made:
        shutil.rmtree(folder, ignore_errors=True)
