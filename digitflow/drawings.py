"""The lean path for single drawings: a Redis Stream with a consumer group, shared by the web and the worker.

  df:drawings          stream   one entry per drawing: job, in (the web's normalised digit), name, t (created
                                at), exp (expires at), model (the card the web serves), client, reply (a channel)
  group "interactive"           every drawing worker process is a consumer (named host+pid) of this one group:
                                XREADGROUP COUNT n gives each a batch, XACK once the results are stored;
                                entries of a dead consumer are taken over with XAUTOCLAIM after a few seconds
  df:answers:{web}     channel  the answers for one web process (pub/sub): one message per batch and process

The web XADDs the entry (one command) and waits for the answer on its own channel, to which one thread per
web process is subscribed. The worker stores each finished job record (digitflow/jobstore.py), publishes
the answers and acknowledges the batch in one pipeline: at concurrency 1 a drawing costs 7 commands (XADD,
XREADGROUP, HSET and EXPIREAT of the record, PUBLISH, XACK, HINCRBY of the images counter), fewer when
requests share a batch. The record is the durable answer: a message missed while the web reconnects is
read from it. Acknowledged entries are trimmed by the workers (XTRIM MINID below the oldest pending one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

STREAM = "df:drawings"
GROUP = QUEUE = "interactive"  # the consumer group, and the queue name heartbeats and metrics use


def answers_channel(name: str) -> str:
    return f"df:answers:{name}"


@dataclass
class Drawing:
    """One drawing as it travels in the stream."""

    job_id: str
    raw: bytes  # the stored input: DIGIT_MAGIC + the 784-byte digit the web normalised
    name: str
    created_at: float
    expires_at: float
    model: str  # JSON of the model summary the web served when it took the drawing
    client: str = ""
    reply: str = ""  # the channel of the web process that waits; empty: nobody waits (wait=0)
    entry_id: str = ""
    deliveries: int = 1  # how often the group has handed it out (more than once: taken over)

    def fields(self) -> dict[str, Any]:
        out = {"job": self.job_id, "in": self.raw, "name": self.name, "t": repr(self.created_at),
               "exp": repr(self.expires_at), "model": self.model}
        if self.client:
            out["client"] = self.client
        if self.reply:
            out["reply"] = self.reply
        return out

    @classmethod
    def parse(cls, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Drawing:
        def text(name: bytes) -> str:
            return fields.get(name, b"").decode("utf-8", "replace")

        return cls(job_id=text(b"job"), raw=fields.get(b"in", b""), name=text(b"name"),
                   created_at=float(fields.get(b"t", 0)), expires_at=float(fields.get(b"exp", 0)),
                   model=text(b"model"), client=text(b"client"), reply=text(b"reply"),
                   entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id)


def encode_answers(answers: list[tuple[str, dict[str, Any], bytes | None]]) -> bytes:
    """(job id, result, digit) of several drawings as one message: per drawing its 32-character id, the
    length of the rest (4 bytes), the result JSON, a newline and the digit (if any)."""
    parts = []
    for job_id, result, image in answers:
        value = json.dumps(result, separators=(",", ":")).encode() + b"\n" + (image or b"")
        parts.append(job_id.encode() + len(value).to_bytes(4, "big") + value)
    return b"".join(parts)


def decode_answers(data: bytes) -> Iterator[tuple[str, dict[str, Any], bytes | None]]:
    at = 0
    while at + 36 <= len(data):
        job_id, size = data[at : at + 32].decode(), int.from_bytes(data[at + 32 : at + 36], "big")
        result, _, image = data[at + 36 : at + 36 + size].partition(b"\n")
        at += 36 + size
        yield job_id, json.loads(result), image or None


def entry_ms(entry_id: bytes | str) -> int:
    """The time (ms) a stream entry was added: the first part of its id."""
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-", 1)[0])
