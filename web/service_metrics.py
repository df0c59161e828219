"""Service-wide figures for GET /metrics, read from Redis at scrape time in a few round trips.

The counters are kept where the work happens (digitflow/metrics_keys.py): images by outcome where results
are stored, bulk jobs by the states they entered at each transition. Queue depth is the length of the
broker's lists; the oldest waiting message is the tail of a queue's list (kombu pushes on the left and
pops on the right), and its age is its job's age. Drawings (queue `interactive`) wait in a stream instead
(digitflow/drawings.py): the entries after the last one handed to a worker, the oldest aged by its id.
Workers are alive while their heartbeat is fresh.
A scrape costs the same whatever the number of jobs: no key is scanned.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from digitflow.celery_app import BULK_QUEUE
from digitflow.drawings import GROUP, STREAM, entry_ms
from digitflow.drawings import QUEUE as DRAWING_QUEUE
from digitflow.jobstore import ACTIVE, CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobStore, valid_job_id
from digitflow.metrics_keys import ALIVE_WITHIN, IMAGES, JOBS, UNACKED, broker_lists, heartbeat_key

log = logging.getLogger(__name__)
QUEUES = (BULK_QUEUE, DRAWING_QUEUE)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)


def job_of_message(raw: bytes | None) -> str | None:
    """The job id a task message (as kombu stores it in Redis) is about; None for anything else."""
    if not raw:
        return None
    try:
        job_id = str(json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return job_id if valid_job_id(job_id) else None


def _decoded(mapping: dict) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in mapping.items()}


class ServiceCollector:
    """A prometheus_client collector; `model` returns the serving model's summary (version, architecture)."""

    def __init__(self, client: redis.Redis, model: Callable[[], dict]):
        self.r = client
        self.model = model

    def collect(self) -> Iterator[Metric]:
        try:
            model = self.model()
            info = GaugeMetricFamily("digitflow_model_info", "The model the service serves (value 1)",
                                     labels=["version", "architecture"])
            info.add_metric([str(model.get("version", "")), str(model.get("architecture", ""))], 1)
            yield info
        except Exception:  # an unreadable model card must not cost the other figures
            log.warning("metrics: cannot read the model card", exc_info=True)
        try:
            figures = list(self._from_redis())
        except redis.RedisError as exc:
            log.warning("metrics: Redis unavailable: %s", exc)
            figures = []
        yield GaugeMetricFamily("digitflow_redis_up", "1 if Redis answered this scrape", value=1 if figures else 0)
        yield from figures

    def _from_redis(self) -> Iterator[Metric]:
        now = time.time()
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(IMAGES)
        pipe.hgetall(JOBS)
        pipe.zcard(ACTIVE)
        pipe.hlen(UNACKED)
        for queue in QUEUES:
            for name in broker_lists(queue):
                pipe.llen(name)
            pipe.lindex(queue, -1)
            pipe.zcount(heartbeat_key(queue), now - ALIVE_WITHIN, "+inf")
        images, jobs, active, unacked, *per_queue = pipe.execute()
        step = len(broker_lists(QUEUES[0])) + 2
        depth, oldest, alive = {}, {}, {}
        for i, queue in enumerate(QUEUES):
            row = per_queue[i * step : (i + 1) * step]
            depth[queue], oldest[queue], alive[queue] = sum(row[:-2]), job_of_message(row[-2]), row[-1]
        created = self._created_at([j for j in oldest.values() if j])
        ages = {q: max(0.0, now - created[j]) if j in created else 0.0 for q, j in oldest.items()}
        depth[DRAWING_QUEUE], sent = self._drawings_waiting()
        ages[DRAWING_QUEUE] = max(0.0, now - sent) if sent is not None else 0.0

        counter = CounterMetricFamily("digitflow_images", "Images that got a result, by outcome (ok or the error code)",
                                      labels=["outcome"])
        for name, n in sorted({"ok": 0, **_decoded(images)}.items()):
            counter.add_metric([name], n)
        yield counter
        counter = CounterMetricFamily("digitflow_jobs", "Bulk jobs that entered each state (queued: created)",
                                      labels=["state"])
        entered = _decoded(jobs)
        for state in STATES:
            counter.add_metric([state], entered.get(state, 0))
        yield counter
        yield GaugeMetricFamily("digitflow_jobs_active", "Bulk jobs queued or running now", value=active)
        yield GaugeMetricFamily("digitflow_tasks_unacked", "Task messages delivered to a worker and not yet "
                                "acknowledged (running, or prefetched)", value=unacked)
        gauges = {
            "digitflow_queue_depth": ("Task messages waiting in the broker", depth),
            "digitflow_queue_oldest_age_seconds": ("Age of the job of the oldest waiting message (0: none waiting)", ages),
            "digitflow_workers_alive": (f"Workers consuming the queue whose heartbeat is under {ALIVE_WITHIN:g} s old",
                                        alive),
        }
        for name, (doc, values) in gauges.items():
            gauge = GaugeMetricFamily(name, doc, labels=["queue"])
            for queue in QUEUES:
                gauge.add_metric([queue], values[queue])
            yield gauge

    def _drawings_waiting(self) -> tuple[int, float | None]:
        """Drawings not yet handed to a worker, and when the oldest of them was sent."""
        try:
            groups = self.r.xinfo_groups(STREAM)
        except redis.ResponseError:  # no stream yet: none sent
            return 0, None
        group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
        if group is None:  # no worker has joined yet: every entry waits
            first = self.r.xrange(STREAM, "-", "+", count=1)
            return self.r.xlen(STREAM), (entry_ms(first[0][0]) / 1000 if first else None)
        after = "(" + (group["last-delivered-id"].decode() if isinstance(group["last-delivered-id"], bytes)
                       else group["last-delivered-id"])
        first = self.r.xrange(STREAM, after, "+", count=1)
        lag = group.get("lag")
        if lag is None:  # Redis 6.2 (or entries deleted): count them, up to a bound
            lag = len(self.r.xrange(STREAM, after, "+", count=10_000)) if first else 0
        return int(lag), (entry_ms(first[0][0]) / 1000 if first else None)

    def _created_at(self, job_ids: list[str]) -> dict[str, float]:
        if not job_ids:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(JobStore.key(job_id, "job"), "created_at")
        return {j: float(t) for j, t in zip(job_ids, pipe.execute(), strict=True) if t is not None}
