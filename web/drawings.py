"""Single predictions on the lean path (digitflow/drawings.py): one XADD, the answer pushed back by pub/sub.

Each web process has a channel of its own and one daemon thread subscribed to it, which hands every answer
to the request thread waiting for it. The subscription is confirmed before the first drawing names the
channel, and a request registers before it sends, so an answer can never come too early. The job record
exists once the worker has answered (it is what a repeated request or a poll reads); a request that has
heard nothing for a second looks there too (a message published while the web was reconnecting is lost,
the record is not), and one that stops waiting (`wait` ran out) writes a `queued` record first, so the 202
it answers with can be polled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from typing import Any

import redis

from digitflow.drawings import STREAM, Drawing, answers_channel, decode_answers
from digitflow.jobstore import FINAL, JobStore

log = logging.getLogger(__name__)
RECHECK = 1.0  # seconds without an answer after which a request looks at its record
Answer = tuple[dict[str, Any], bytes | None]  # (result, the 784-byte digit the model saw)


class _Waiter:
    __slots__ = ("answer", "event")

    def __init__(self):
        self.event = threading.Event()
        self.answer: Answer | None = None


class Answers:
    """This process's answers channel and the thread subscribed to it (started on first use, again after a fork)."""

    def __init__(self, client: redis.Redis):
        self.client = client  # the subscription holds one connection of its pool
        self.channel = ""
        self._pid = 0
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiter] = {}

    def _started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            channel = answers_channel(f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}")
            pubsub = _subscribe(self.client, channel)
            self.channel, self._waiting = channel, {}
            threading.Thread(target=self._read, args=(self.client, pubsub, channel), name="drawing-answers",
                             daemon=True).start()
            self._pid = os.getpid()

    def expect(self, job_id: str) -> _Waiter:
        self._started()
        waiter = _Waiter()
        with self._lock:
            self._waiting[job_id] = waiter
        return waiter

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._waiting.pop(job_id, None)

    def _read(self, client: redis.Redis, pubsub, channel: str) -> None:
        while True:
            try:
                message = pubsub.get_message(timeout=1.0)
            except redis.RedisError as exc:  # Redis restarting: subscribe again; waiting requests read records
                log.info("answers channel: %s; subscribing again", exc)
                time.sleep(0.5)
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()
                    pubsub = _subscribe(client, channel)
                continue
            if message is None or message["type"] != "message":
                continue
            for job_id, result, image in decode_answers(message["data"]):
                with self._lock:
                    waiter = self._waiting.pop(job_id, None)
                if waiter is not None:
                    waiter.answer = (result, image)
                    waiter.event.set()


def _subscribe(client: redis.Redis, channel: str):
    """A subscription Redis has confirmed (so no answer published after this returns is missed)."""
    pubsub = client.pubsub()
    pubsub.subscribe(channel)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1.0)
        if message is not None and message["type"] == "subscribe":
            return pubsub
    pubsub.close()
    raise redis.TimeoutError(f"no confirmation of the subscription to {channel}")


def predict(r: redis.Redis, store: JobStore, answers: Answers, d: Drawing, wait: float) -> Answer | None:
    """Send the drawing and wait up to `wait` seconds: its answer, or None once a queued record is stored."""
    if wait <= 0:
        d.entry_id = r.xadd(STREAM, d.fields()).decode()
        return _queued(r, store, d)
    waiter = answers.expect(d.job_id)
    d.reply = answers.channel
    try:
        d.entry_id = r.xadd(STREAM, d.fields()).decode()
        deadline = time.monotonic() + wait
        while not waiter.event.wait(min(RECHECK, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
            found = _finished(*store.drawing_answer(d.job_id))
            if found:
                return found
    finally:
        answers.forget(d.job_id)
    return waiter.answer or _queued(r, store, d)


def _finished(status: str | None, result: dict[str, Any] | None, image: bytes | None) -> Answer | None:
    return (result, image) if status in FINAL and result is not None else None


def _queued(r: redis.Redis, store: JobStore, d: Drawing) -> Answer | None:
    """The record a client can poll; the answer instead if the worker has stored it by now."""
    pipe = r.pipeline(transaction=False)
    store.queue_drawing(pipe, d)
    pipe.hmget(JobStore.key(d.job_id, "job"), ["status", "result", "image"])
    status, raw, image = pipe.execute()[-1]
    return _finished(status.decode() if status else None, json.loads(raw) if raw else None, image)


def wait_for_record(store: JobStore, job_id: str, wait: float) -> Answer | None:
    """A repeated request (Idempotency-Key) waits on the record of the first one's drawing."""
    deadline = time.monotonic() + wait
    while True:
        found = _finished(*store.drawing_answer(job_id))
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)
