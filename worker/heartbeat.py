"""Each worker says it is alive: every few seconds its node name goes into `df:workers:<queue>` (a sorted
set scored by time) for each queue it consumes. The web's /metrics counts the fresh entries; a Celery
ping would cost a broadcast and a wait on every scrape."""

from __future__ import annotations

import logging
import socket
import threading
import time

import redis
from celery.signals import worker_ready, worker_shutdown

from digitflow.metrics_keys import HEARTBEAT_EVERY, heartbeat_key
from digitflow.settings import get_settings

log = logging.getLogger(__name__)
FORGET_AFTER = 86400  # entries of workers gone for a day are dropped
_beat: dict = {}


def beat(client: redis.Redis, node: str, queues: list[str], now: float | None = None) -> None:
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        key = heartbeat_key(queue)
        pipe.zadd(key, {node: now})
        pipe.zremrangebyscore(key, "-inf", now - FORGET_AFTER)
        pipe.expire(key, FORGET_AFTER)
    pipe.execute()


def _loop(client: redis.Redis, node: str, queues: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            beat(client, node, queues)
        except redis.RedisError as exc:  # Redis restarting: the next beat tries again
            log.debug("heartbeat failed: %s", exc)
        stop.wait(HEARTBEAT_EVERY)


@worker_ready.connect
def start(sender=None, **_kwargs) -> None:
    """A daemon thread in the worker's main process beats for the queues it consumes."""
    from worker.celery_app import app

    node = getattr(sender, "hostname", None) or socket.gethostname()
    queues = sorted(app.amqp.queues.consume_from or app.amqp.queues)
    client = redis.Redis.from_url(get_settings().redis_url, socket_timeout=5, socket_connect_timeout=2)
    stop = threading.Event()
    _beat.update(client=client, node=node, queues=queues, stop=stop)
    threading.Thread(target=_loop, args=(client, node, queues, stop), name="heartbeat", daemon=True).start()


@worker_shutdown.connect
def stop(**_kwargs) -> None:
    """A worker that stops cleanly is no longer counted at once."""
    if not _beat:
        return
    _beat["stop"].set()
    try:
        for queue in _beat["queues"]:
            _beat["client"].zrem(heartbeat_key(queue), _beat["node"])
    except redis.RedisError:
        pass
