"""The Celery app, built from the shared settings."""

from celery import Celery

from digitflow.settings import get_settings

BULK_QUEUE = "bulk"  # drawings do not go through Celery: digitflow/drawings.py, worker/drawings.py
CHUNK_TASK = "worker.tasks.process_chunk"
WEBHOOK_TASK = "worker.webhooks.deliver"  # on the bulk queue: bulk workers deliver job events

settings = get_settings()
app = Celery("digitflow", broker=settings.redis_url, include=["worker.tasks", "worker.reconcile", "worker.heartbeat",
                                                                 "worker.webhooks"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,  # results live in the job store, keyed by image index
    task_acks_late=True,  # a task whose worker dies is delivered again ...
    task_reject_on_worker_lost=True,  # ... also when its pool process is killed
    worker_prefetch_multiplier=1,
    task_default_queue=BULK_QUEUE,
    task_routes={CHUNK_TASK: {"queue": BULK_QUEUE}, WEBHOOK_TASK: {"queue": BULK_QUEUE}},
    task_time_limit=settings.task_time_limit,
    task_soft_time_limit=max(1, settings.task_time_limit - 10),
    # Unacked tasks of a dead worker come back visibility_timeout (+ at most one restore interval) later;
    # kombu's default scan is throttled to about every 100 s.
    broker_transport_options={
        "visibility_timeout": settings.visibility_timeout,
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
        "unacked_restore_limit": 100,
    },
    broker_connection_retry_on_startup=True,
    broker_pool_limit=32,
    worker_send_task_events=False,
    worker_enable_remote_control=True,  # /readyz pings the workers
)
