"""Shared per-process handles: Redis, the job store, the model card, task sending."""

from __future__ import annotations

import redis

from digitflow.callback_url import parse_allowed
from digitflow.contract import REFUSED_KEY, load_card, model_summary, resolve_model_dir, serving_target
from digitflow.jobstore import JobStore
from digitflow.settings import Settings
from digitflow.webhooks import end_event
from web.auth import Keys
from web.idempotency import Idempotency
from worker.celery_app import BULK_QUEUE, CHUNK_TASK, DRAWING_TASK, INTERACTIVE_QUEUE, WEBHOOK_TASK
from worker.celery_app import app as celery_app

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class Services:
    """Created once per web process by create_app and kept in app.extensions["digitflow"]."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.redis = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=max(35, settings.predict_wait_max + 5),
            health_check_interval=10, retry_on_timeout=False,
        )
        self.store = JobStore(self.redis, settings.result_ttl_seconds, on_end=self.send_webhook)
        parse_allowed(settings.webhook_allowed_hosts)  # a malformed WEBHOOK_ALLOWED_HOSTS stops the start
        self.keys = Keys.from_settings(settings)
        self.idempotency = Idempotency(self.redis, settings.result_ttl_seconds)
        self.celery = celery_app
        self.celery.conf.broker_url = settings.redis_url
        self._model: tuple[str, dict] | None = None

    @property
    def model(self) -> dict:
        """The model MODEL_DIR serves now (re-read when its `current` pointer moves)."""
        target = serving_target(self.settings.model_dir)
        if self._model is None or self._model[0] != target:
            self._model = (target, model_summary(load_card(resolve_model_dir(self.settings.model_dir))))
        return self._model[1]

    def refused_models(self) -> dict[str, dict]:
        """Pointer targets the workers refused to load (worker/serving.py), with why."""
        import json

        return {k.decode(): json.loads(v) for k, v in self.redis.hgetall(REFUSED_KEY).items()}

    def send_chunk(self, job_id: str, chunk: int) -> None:
        self.celery.send_task(CHUNK_TASK, args=(job_id, chunk), queue=BULK_QUEUE, retry=True, retry_policy=PUBLISH_RETRY)

    def send_drawing(self, job_id: str) -> None:
        self.celery.send_task(DRAWING_TASK, args=(job_id,), queue=INTERACTIVE_QUEUE, retry=True, retry_policy=PUBLISH_RETRY)

    def send_webhook(self, store: JobStore, job_id: str) -> None:
        """The job store's on_end hook: a job ended here (cancelled, or finished while stored) -> its event."""
        found = end_event(store, job_id)
        if found:
            self.celery.send_task(WEBHOOK_TASK, args=(job_id, *found), queue=BULK_QUEUE, retry=True,
                                  retry_policy=PUBLISH_RETRY)

    def workers_alive(self, timeout: float = 1.0) -> list[str]:
        replies = self.celery.control.ping(timeout=timeout) or []
        return sorted(name for reply in replies for name in reply)
