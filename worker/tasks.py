"""Celery tasks: thin wrappers that fetch inputs from the job store, run the pipeline, store results."""

from __future__ import annotations

import logging
from functools import lru_cache

import redis
from celery.signals import worker_process_init, worker_ready
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from digitflow.celery_app import CHUNK_TASK, app
from digitflow.jobstore import CANCELLED, JobStore
from digitflow.settings import get_settings
from worker import heartbeat
from worker.engine import Engine
from worker.pipeline import POISON, run_batch, warm_up
from worker.serving import ServingModel, for_this_process
from worker.webhooks import enqueue as enqueue_webhook

log = logging.getLogger(__name__)
settings = get_settings()


@lru_cache(maxsize=1)
def serving() -> ServingModel:
    """This process's model holder (created on first use: never in the parent before fork)."""
    return for_this_process(settings.model_dir, settings.inference_backend, settings.inference_threads, store().r)


def engine() -> Engine:
    """The model for the next task: loaded on first use, switched when MODEL_DIR/current moves."""
    return serving().engine()


@lru_cache(maxsize=1)
def store() -> JobStore:
    """The job store of this process; it rides out a Redis restart (about a minute of retries)."""
    # Failing instead would fail the task, and a failed task is acknowledged: its chunk would be lost.
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=30, socket_connect_timeout=2, health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=40),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
    return JobStore(client, settings.result_ttl_seconds, on_end=enqueue_webhook)


def _poisoned(job_id: str, chunk: int, inputs: dict[int, bytes]) -> bool:
    """Count this delivery; past the cap the chunk's images get an error instead of another try."""
    if store().count_delivery(job_id, chunk) <= settings.max_redeliveries + 1:
        return False
    store().write_results(job_id, dict.fromkeys(inputs, POISON), {}, done_chunk=chunk)
    log.error("job %s chunk %d: delivery cap reached, marked %d images failed", job_id, chunk, len(inputs))
    return True


@app.task(name=CHUNK_TASK, bind=True)
def process_chunk(self, job_id: str, chunk: int) -> int:
    """Predict one chunk of a bulk job; returns how many images it processed."""
    s = store()
    status, started, inputs = s.begin_chunk(job_id, chunk)
    if status is None or status == CANCELLED:
        s.r.delete(s.key(job_id, f"in:{chunk}"))
        return 0
    if _poisoned(job_id, chunk, inputs):
        return 0
    if not started:
        s.mark_running(job_id)
    if not inputs:  # done by an earlier delivery
        s.finish_if_complete(job_id)
        return 0
    batch = run_batch(engine(), inputs, settings.max_image_pixels, settings.batch_size)
    if s.status(job_id) == CANCELLED:
        return 0
    s.write_results(job_id, batch.results, batch.digits, done_chunk=chunk, worker=self.request.hostname,
                    previews=batch.previews, previews_are_inputs=batch.previews_are_inputs)
    return len(inputs)


def _load() -> None:
    """Load the model, run one warm-up batch, and say the model is loaded (worker/heartbeat.py)."""
    warm_up(serving().engine(), settings.max_image_pixels, settings.batch_size)
    heartbeat.mark_loaded()


@worker_process_init.connect
def _load_in_pool_process(**_kwargs) -> None:
    """Prefork pool processes load as they start (well within Celery's 4 s for this signal): the first job
    runs as fast as later ones; /readyz counts the worker once they have and its main process consumes."""
    _load()


@worker_ready.connect
def _load_in_solo_worker(sender=None, **_kwargs) -> None:
    """A solo worker runs tasks in its main process: load the model there, now."""
    pool = getattr(sender, "pool", None)
    if pool is not None and type(pool).__module__.endswith(".solo"):
        _load()
