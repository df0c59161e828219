"""Lost chunk tasks are re-sent: the scan against a real Redis broker queue (no worker consumes it)."""

from __future__ import annotations

import time

import pytest
from celery import Celery

from digitflow.celery_app import CHUNK_TASK
from digitflow.jobstore import ACTIVE, JobStore
from worker.reconcile import chunks_in_broker, scan_once

MODEL = {"version": "test", "architecture": "tiny", "test_accuracy": None}
QUEUE = "df-test-nobody"  # a queue no worker listens on: messages stay where the test can see them


@pytest.fixture
def broker(redis_url, redis_client):
    redis_client.delete(QUEUE)
    yield Celery("reconcile-test", broker=redis_url)
    redis_client.delete(QUEUE)


def three_chunk_job(store: JobStore) -> str:
    job = store.create(total=3, chunks=3, kind="bulk", model=MODEL)
    for c in range(3):
        store.add_chunk(job, c, [f"{c}.png"], {c: b"raw"}, {})
    return job


def test_only_chunks_neither_queued_nor_done_of_stale_jobs_are_resent(redis_client, broker):
    store = JobStore(redis_client, ttl_seconds=600)
    job = three_chunk_job(store)
    broker.send_task(CHUNK_TASK, args=(job, 0), queue=QUEUE)  # chunk 0 still queued
    store.write_results(job, {2: {"digit": 1, "confidence": 0.9}}, {}, done_chunk=2)  # chunk 2 done; chunk 1 lost
    assert chunks_in_broker(redis_client, QUEUE) == {(job, 0)}

    assert scan_once(store, stale_after=60, queue=QUEUE, celery=broker) == []  # progress just now: not stale
    redis_client.zadd(ACTIVE, {job: time.time() - 120})
    assert scan_once(store, stale_after=60, queue=QUEUE, celery=broker) == [(job, 1)]
    assert chunks_in_broker(redis_client, QUEUE) == {(job, 0), (job, 1)}
    assert scan_once(store, stale_after=60, queue=QUEUE, celery=broker) == []  # a full stale period before the next look


def test_finished_cancelled_and_expired_jobs_leave_the_active_set(redis_client, broker):
    store = JobStore(redis_client, ttl_seconds=600)
    done = store.create(total=1, chunks=1, kind="bulk", model=MODEL)
    store.add_chunk(done, 0, ["a.png"], {0: b"raw"}, {})
    store.write_results(done, {0: {"digit": 3, "confidence": 0.9}}, {}, done_chunk=0)
    cancelled = three_chunk_job(store)
    store.cancel(cancelled)
    single = store.create(total=1, chunks=1, kind="single", model=MODEL, single=("a.png", b"raw"))
    assert redis_client.zscore(ACTIVE, done) is None and redis_client.zscore(ACTIVE, cancelled) is None
    assert redis_client.zscore(ACTIVE, single) is None  # drawings are answered within seconds or retried by the user

    expired = three_chunk_job(store)
    store.delete(expired)
    redis_client.zadd(ACTIVE, {expired: 0})  # as if its keys had expired
    assert scan_once(store, stale_after=60, queue=QUEUE, celery=broker) == []
    assert redis_client.zcard(ACTIVE) == 0


def test_a_job_whose_upload_was_never_fully_stored_is_cancelled(redis_client, broker):
    store = JobStore(redis_client, ttl_seconds=600)
    job = store.create(total=3, chunks=3, kind="bulk", model=MODEL)
    store.add_chunk(job, 0, ["0.png"], {0: b"raw"}, {})  # the web stopped here: chunks 1 and 2 never stored
    store.write_results(job, {0: {"digit": 1, "confidence": 0.9}}, {}, done_chunk=0)
    redis_client.zadd(ACTIVE, {job: time.time() - 120})
    assert scan_once(store, stale_after=60, queue=QUEUE, celery=broker) == []
    assert store.status(job) == "cancelled" and redis_client.zscore(ACTIVE, job) is None
    assert chunks_in_broker(redis_client, QUEUE) == set()  # nothing re-sent for chunks that have no inputs

    complete = three_chunk_job(store)  # all stored and done but not marked finished: finished, not cancelled
    redis_client.hset(JobStore.key(complete, "res"), mapping={str(i): '{"digit":1}' for i in range(3)})
    for c in range(3):
        redis_client.delete(JobStore.key(complete, f"in:{c}"))
    redis_client.zadd(ACTIVE, {complete: time.time() - 120})
    scan_once(store, stale_after=60, queue=QUEUE, celery=broker)
    assert store.status(complete) == "succeeded"
