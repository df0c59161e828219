"""Shared per-process handles: Redis, the job store, the model card, task sending, drawings' replies."""

from __future__ import annotations

import json
import time

import redis

from digitflow.callback_url import parse_allowed
from digitflow.celery_app import BULK_QUEUE, CHUNK_TASK, WEBHOOK_TASK
from digitflow.celery_app import app as celery_app
from digitflow.contract import REFUSED_KEY, load_card, model_summary, resolve_model_dir, serving_target
from digitflow.drawings import QUEUE as DRAWING_QUEUE
from digitflow.jobstore import JobStore
from digitflow.metrics_keys import ALIVE_WITHIN, ready_key
from digitflow.settings import Settings
from digitflow.webhooks import end_event
from web.auth import Keys
from web.drawings import Answers
from web.idempotency import Idempotency

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
WORKER_KINDS = (BULK_QUEUE, DRAWING_QUEUE)  # /readyz wants a worker of each with its model loaded
MODEL_CHECK_EVERY = 1.0  # seconds between looks at MODEL_DIR/current (as the workers do)


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
        self.celery.producer_pool  # noqa: B018  builds the publishing pool now (imports the broker transport, no
        # connection yet): otherwise the first upload a web process takes pays about 20 ms for it before the
        # workers get their first chunk
        self.answers = Answers(self.redis)
        self._model: tuple[str, dict, str] | None = None  # (pointer target, summary, its JSON)
        self._model_checked = 0.0

    def _card(self) -> tuple[str, dict, str]:
        now = time.monotonic()
        if self._model is not None and now - self._model_checked < MODEL_CHECK_EVERY:
            return self._model
        target = serving_target(self.settings.model_dir)
        if self._model is None or self._model[0] != target:
            summary = model_summary(load_card(resolve_model_dir(self.settings.model_dir)))
            self._model = (target, summary, json.dumps(summary))
        self._model_checked = now
        return self._model

    @property
    def model(self) -> dict:
        """The model MODEL_DIR serves now (the pointer is looked at once a second, the card re-read when it moves)."""
        return self._card()[1]

    @property
    def model_json(self) -> str:
        return self._card()[2]

    def refused_models(self) -> dict[str, dict]:
        """Pointer targets the workers refused to load (worker/serving.py), with why."""
        import json

        return {k.decode(): json.loads(v) for k, v in self.redis.hgetall(REFUSED_KEY).items()}

    def send_chunk(self, job_id: str, chunk: int) -> None:
        self.celery.send_task(CHUNK_TASK, args=(job_id, chunk), queue=BULK_QUEUE, retry=True, retry_policy=PUBLISH_RETRY)

    def send_webhook(self, store: JobStore, job_id: str) -> None:
        """The job store's on_end hook: a job ended here (cancelled, or finished while stored) -> its event."""
        found = end_event(store, job_id)
        if found:
            self.celery.send_task(WEBHOOK_TASK, args=(job_id, *found), queue=BULK_QUEUE, retry=True,
                                  retry_policy=PUBLISH_RETRY)

    def ready_workers(self) -> dict[str, list[str]]:
        """Per kind (bulk, interactive): the workers whose heartbeat says their model is loaded, fresh."""
        pipe = self.redis.pipeline(transaction=False)
        for kind in WORKER_KINDS:
            pipe.zrangebyscore(ready_key(kind), time.time() - ALIVE_WITHIN, "+inf")
        return {kind: sorted(n.decode() for n in names) for kind, names in zip(WORKER_KINDS, pipe.execute(), strict=True)}
