"""Each worker says it is alive: every few seconds its node name goes into `df:workers:<queue>` (a sorted
set scored by time) for each queue it consumes. The web's /metrics counts the fresh entries; a Celery
ping would cost a broadcast and a wait on every scrape.

Once a node's model is loaded it also beats in `df:ready:<queue>`, which /readyz reads: the drawing worker
says so itself; a Celery worker's pool processes load theirs before their first task and say so
(`mark_loaded`) in memory shared with the main process (so its beats carry it on, whatever Redis lost), and
in Redis at once if the main process already consumes (else its first beat, when it starts consuming, does:
a worker's main process takes about a second after the pool is up before it takes tasks, mingle included, and
a job sent in that second waited for it)."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable

import redis
from celery.signals import worker_init, worker_ready, worker_shutdown

from digitflow.metrics_keys import HEARTBEAT_EVERY, heartbeat_key, ready_key
from digitflow.settings import get_settings

log = logging.getLogger(__name__)
FORGET_AFTER = 86400  # entries of workers gone for a day are dropped
_beat: dict = {}
_node: dict = {}  # this Celery worker's node and queues, set before the pool forks (its processes inherit it)


def beat(client: redis.Redis, node: str, queues: list[str], now: float | None = None, loaded: bool = False) -> None:
    """The node is alive (and, if `loaded`, has its model loaded) now."""
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for key in (heartbeat_key(queue), ready_key(queue)) if loaded else (heartbeat_key(queue),):
            pipe.zadd(key, {node: now})
            pipe.zremrangebyscore(key, "-inf", now - FORGET_AFTER)
            pipe.expire(key, FORGET_AFTER)
    pipe.execute()


def forget(client: redis.Redis, node: str, queues: list[str]) -> None:
    """A node that stops (or starts again) is neither alive nor ready until it says so."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.zrem(heartbeat_key(queue), node)
        pipe.zrem(ready_key(queue), node)
    pipe.execute()


def _client() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, socket_timeout=5, socket_connect_timeout=2)


def _queues(app) -> list[str]:
    return sorted(app.amqp.queues.consume_from or app.amqp.queues)


@worker_init.connect
def _remember_node(sender=None, **_kwargs) -> None:
    """Before the pool forks: the node's name and queues for its processes; no stale ready mark of a
    previous run under the same name."""
    node = getattr(sender, "hostname", None)
    if node is None:
        return
    _node.update(node=node, queues=_queues(sender.app), loaded=multiprocessing.RawValue("b", 0),
                 consuming=multiprocessing.RawValue("b", 0))
    try:
        client = _client()
        pipe = client.pipeline(transaction=False)
        for queue in _node["queues"]:
            pipe.zrem(ready_key(queue), node)
        pipe.execute()
        client.close()
    except redis.RedisError as exc:  # Redis not there yet: the worker will wait for it anyway
        log.debug("ready mark not cleared: %s", exc)


def mark_loaded() -> None:
    """In a pool process (or a solo worker) that has loaded its model: the node is ready."""
    if not _node:
        return
    _node["loaded"].value = 1
    if not _node["consuming"].value:  # the main process's first beat says it, once tasks are taken
        return
    try:
        client = _client()
        beat(client, _node["node"], _node["queues"], loaded=True)
        client.close()
    except redis.RedisError as exc:
        log.warning("could not mark the model loaded: %s", exc)


def keep_beating(client: redis.Redis, node: str, queues: list[str], stop: threading.Event,
                 loaded: Callable[[], bool]) -> None:
    """Beat every HEARTBEAT_EVERY seconds until `stop` is set (a thread's target)."""
    while not stop.is_set():
        try:
            beat(client, node, queues, loaded=loaded())
        except redis.RedisError as exc:  # Redis restarting: the next beat tries again
            log.debug("heartbeat failed: %s", exc)
        stop.wait(HEARTBEAT_EVERY)


@worker_ready.connect
def start(sender=None, **_kwargs) -> None:
    """A daemon thread in the worker's main process beats for the queues it consumes."""
    from digitflow.celery_app import app

    node = getattr(sender, "hostname", None) or socket.gethostname()
    queues = _queues(app)
    client = _client()
    stop = threading.Event()
    _beat.update(client=client, node=node, queues=queues, stop=stop)
    loaded = _node.get("loaded")
    if _node:
        _node["consuming"].value = 1
    threading.Thread(target=keep_beating, args=(client, node, queues, stop, lambda: bool(loaded and loaded.value)),
                     name="heartbeat", daemon=True).start()


@worker_shutdown.connect
def stop(**_kwargs) -> None:
    """A worker that stops cleanly is no longer counted at once."""
    if not _beat:
        return
    _beat["stop"].set()
    with contextlib.suppress(redis.RedisError):
        forget(_beat["client"], _beat["node"], _beat["queues"])
