"""Re-send chunk tasks that the broker lost, so that a job never hangs with inputs nobody will process.

Celery's visibility timeout brings back a task whose worker died, but only if the task is in the
broker's unacked hash. A message can also be lost outright: kombu's Redis transport pops a message
(BRPOP) and records it as unacked in a second round trip, and a Redis shutdown between the two drops
it. The job store still knows which chunks are unfinished (their inputs are stored until done), so
every RECONCILE_INTERVAL seconds one worker (a Redis lock) looks at the bulk jobs without progress for
longer than VISIBILITY_TIMEOUT + TASK_TIME_LIMIT (by then any delivered task has finished, died and
been restored, or been killed) and re-sends each unfinished chunk that is neither queued nor unacked.
A second delivery of a chunk is harmless: results are keyed by image index.

A stale job with neither unfinished chunks nor all its results was never fully stored: the web
process stopped mid-upload, before it answered with the job id. The scan cancels it (its stored
chunks were processed for nothing, and nobody can poll it), instead of leaving it running until its TTL.
A job that ended but is still listed (its process died, or queueing its webhook failed, in between) has
its webhook queued again (the same event id: receivers dedupe) before it leaves the list.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time

import redis
from celery.signals import worker_ready

from digitflow.celery_app import BULK_QUEUE, CHUNK_TASK, app
from digitflow.jobstore import FINAL, JobStore
from digitflow.settings import get_settings
from worker.webhooks import enqueue as enqueue_webhook

log = logging.getLogger(__name__)
LOCK = "df:reconcile:lock"
UNACKED = "unacked"  # kombu's Redis transport default (unacked_key)
PRIORITY_SEP = "\x06\x16"  # kombu keeps priorities 3, 6, 9 in lists named queue + sep + priority


def chunk_of(payload: dict) -> tuple[str, int] | None:
    """(job, chunk) of a chunk-task message as kombu stores it in Redis; None for other messages."""
    if payload.get("headers", {}).get("task") != CHUNK_TASK:
        return None
    try:
        args = json.loads(base64.b64decode(payload["body"]))[0]
        return str(args[0]), int(args[1])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def chunks_in_broker(r: redis.Redis, queue: str) -> set[tuple[str, int]]:
    """(job, chunk) of every chunk task waiting in the queue or delivered and not yet acknowledged."""
    found = set()
    payloads = []
    for name in [queue] + [f"{queue}{PRIORITY_SEP}{p}" for p in (3, 6, 9)]:
        payloads += [json.loads(raw) for raw in r.lrange(name, 0, -1)]
    payloads += [json.loads(raw)[0] for raw in r.hvals(UNACKED)]
    for payload in payloads:
        chunk = chunk_of(payload)
        if chunk:
            found.add(chunk)
    return found


def scan_once(store: JobStore, stale_after: float, queue: str = BULK_QUEUE, celery=app) -> list[tuple[str, int]]:
    """Re-send the lost chunks of stale jobs (through `celery`, on `queue`); returns what was re-sent."""
    stale = store.stale_jobs(stale_after)
    if not stale:
        return []
    in_broker = chunks_in_broker(store.r, queue)
    resent, orphans = [], []
    for job_id in stale:
        status = store.status(job_id)
        if status is None or status in FINAL:  # expired, finished or cancelled
            store.settle(job_id)  # an ended job still listed here: its webhook hand-over is retried first
            continue
        pending = store.pending_chunks(job_id)
        if not pending:  # every stored chunk has its results; make sure the job is marked finished
            store.finish_if_complete(job_id)
            if store.status(job_id) not in FINAL:
                # Images without results or inputs were never stored: the web process stopped while
                # storing the upload, before it answered with the job id. Nobody can poll this job.
                store.cancel(job_id)
                orphans.append(job_id)
                continue
        for chunk in pending:
            if (job_id, chunk) not in in_broker:
                celery.send_task(CHUNK_TASK, args=(job_id, chunk), queue=queue)
                resent.append((job_id, chunk))
        store.touch(job_id)  # a full stale period before this job is looked at again
    if resent:
        log.warning("re-sent %d lost chunk task(s): %s", len(resent), resent[:20])
    if orphans:
        log.warning("cancelled %d job(s) whose upload was never fully stored: %s", len(orphans), orphans[:20])
    return resent


def _loop(interval: int, stale_after: float) -> None:
    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=2)
    store = JobStore(client, settings.result_ttl_seconds, on_end=enqueue_webhook)
    me = socket.gethostname()
    while True:
        time.sleep(interval)
        try:
            if client.set(LOCK, me, nx=True, ex=max(1, interval - 1)):  # one worker scans per interval
                scan_once(store, stale_after)
        except Exception:  # Redis down or restarting: try again next interval
            log.warning("reconcile scan failed", exc_info=True)


@worker_ready.connect
def start(**_kwargs) -> None:
    """Every worker runs the scan loop in a daemon thread of its main process."""
    settings = get_settings()
    if settings.reconcile_interval <= 0:
        return
    stale_after = settings.visibility_timeout + settings.task_time_limit
    threading.Thread(target=_loop, args=(settings.reconcile_interval, stale_after), name="reconcile",
                     daemon=True).start()
    log.info("reconcile: every %d s, jobs without progress for %d s", settings.reconcile_interval, stale_after)
