"""Where service-wide metrics live in Redis: counters kept where the work happens, worker heartbeats.

  df:metrics:images   hash  outcome ("ok" or the error code) -> images that got a result
  df:metrics:jobs     hash  state -> bulk jobs that entered it (queued at creation, running, succeeded,
                            failed, cancelled); the unfinished ones are the members of df:active
  df:workers:{queue}  zset  worker node -> time of its last heartbeat (worker/heartbeat.py)
  df:ready:{queue}    zset  worker node -> its last heartbeat since its model is loaded (/readyz)

The workers and the web write them in pipelines they send anyway; the web's GET /metrics reads them
with a fixed number of commands (web/metrics.py), never by scanning keys.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

IMAGES = "df:metrics:images"
JOBS = "df:metrics:jobs"
HEARTBEAT_EVERY = 5.0  # seconds between a worker's heartbeats
ALIVE_WITHIN = 3 * HEARTBEAT_EVERY  # a worker counts as alive while its last beat is younger than this
UNACKED = "unacked"  # kombu's Redis transport: delivered and not yet acknowledged messages
PRIORITY_SEP = "\x06\x16"  # kombu keeps priorities 3, 6, 9 in lists named queue + sep + priority
_CODE = re.compile(r"[a-z0-9_]{1,40}")


def heartbeat_key(queue: str) -> str:
    return f"df:workers:{queue}"


def ready_key(queue: str) -> str:
    return f"df:ready:{queue}"


def broker_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps a queue's waiting messages in (the plain name holds priority 0)."""
    return [queue] + [f"{queue}{PRIORITY_SEP}{p}" for p in (3, 6, 9)]


def outcome(result: dict[str, Any]) -> str:
    """`ok`, or the result's error code (a bounded set of names; anything else is `other`)."""
    if "error" not in result:
        return "ok"
    code = str(result["error"].get("code", ""))
    return code if _CODE.fullmatch(code) else "other"


def count_images(pipe, results: Iterable[dict[str, Any]]) -> None:
    """Add the outcomes of stored results to the images counter, in the caller's pipeline."""
    for name, n in Counter(outcome(r) for r in results).items():
        pipe.hincrby(IMAGES, name, n)
