"""The job store in Redis: inputs by chunk, results keyed by image index, progress, states, TTL.

Keys share the hash tag {job_id}, so one job lives on one Redis Cluster slot:
  df:{id}:job       hash   status, total, chunks, plan (the chunks' sizes), kind, created_at, started_at,
                           finished_at, expires_at, model, client, callback_url, webhook_status,
                           webhook_attempts, webhook_error
  df:{id}:names     list   file names in input order
  df:{id}:in:{c}    string the raw inputs of chunk c, packed (pack_inputs: one value, not a field per image, so
                           storing and fetching a chunk is one command; deleted once the chunk is done)
  df:{id}:res       hash   index -> JSON result (digit, confidence, probabilities) or error
  df:{id}:err       hash   index -> 1 for results that are errors (its length is the failed count)
  df:{id}:img:{c}   string the 784-byte normalised digits the model saw in chunk c, packed (pack_digits: a bit
                           per pixel and the ink values, about a third of their size)
  df:{id}:img       hash   index -> a 784-byte digit stored on its own (results written outside a chunk;
                           chunks done by workers of before pack_digits)
  df:{id}:src:{c}   string chunk c's inputs kept as their own previews (renamed from in:{c} when every input
                           of the chunk is a small image browsers show: no second copy is written)
  df:{id}:labels    hash   index -> the human label (0-9) a reviewer set or accepted
  df:{id}:prev      hash   index -> a small preview of the upload (<= 96 px, <= 12 KB; for review), for the
                           chunks not kept in src:{c}
  df:{id}:tries:{c} string deliveries of chunk c (the poison-message guard)
  df:{id}:by        hash   chunk -> the worker node that stored its results
  df:active         zset   unfinished bulk jobs -> time of their last progress (worker/reconcile.py)
  df:metrics:*      hash   images by outcome, bulk jobs by state entered (digitflow/metrics_keys.py)
Results keyed by index make a re-delivered chunk overwrite, never duplicate; done = HLEN(res).
A drawing (kind single, digitflow/drawings.py) keeps everything in its job hash: `name`, `result` (JSON) and
`image` (the 784-byte digit) beside the usual fields, written in one HSET by the drawing worker; the web
writes a `queued` record (with `entry`, its stream entry) only when it answers 202 before the worker did.
A job ends once: a small Lua script moves it to a final state only from an unfinished one, so of two
racing finishers (or a finisher and a cancel) exactly one wins; the winner hands the job's webhook to
`on_end` (the web and the workers enqueue its delivery there; this package imports no Celery).
"""

from __future__ import annotations

import json
import logging
import secrets
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import redis

from digitflow.drawings import GROUP, STREAM, Drawing
from digitflow.metrics_keys import JOBS, count_images

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINAL = {SUCCEEDED, FAILED, CANCELLED}
DIGIT_MAGIC = b"\x00DFDIGIT"  # raw inputs already normalised by the web: 784 bytes follow
ACTIVE = "df:active"
log = logging.getLogger(__name__)
# KEYS[1] the job hash; ARGV final status, now, "1" to set started_at too. 0: it had ended (or expired)
# already; 1: this call ended it; 2: this call ended it and it has a callback URL.
END_SCRIPT = """
local s = redis.call('hget', KEYS[1], 'status')
if not s or s == 'succeeded' or s == 'failed' or s == 'cancelled' then return 0 end
redis.call('hset', KEYS[1], 'status', ARGV[1], 'finished_at', ARGV[2])
if ARGV[3] == '1' then redis.call('hsetnx', KEYS[1], 'started_at', ARGV[2]) end
return 1 + redis.call('hexists', KEYS[1], 'callback_url')
"""
# queued -> running, only from queued (a cancel or an end in between must not be undone); 1 if it moved.
RUN_SCRIPT = """
if redis.call('hget', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('hset', KEYS[1], 'status', 'running')
return 1
"""
# A done chunk's inputs become its previews (KEYS[1] in:{c} -> KEYS[2] src:{c}, its expiry with it); a second
# delivery of the same chunk finds them moved already.
KEEP_SOURCES = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('rename', KEYS[1], KEYS[2]) end return 0"
# Sets fields of a job hash only while the job exists (a deleted job must not come back as a stub).
SET_IF_EXISTS = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('hset', KEYS[1], unpack(ARGV)) end return 0"


_COUNT = struct.Struct("<I")


def pack_inputs(inputs: dict[int, bytes]) -> bytes:
    """A chunk's inputs as one value: their count, (index, length) pairs, then the bytes back to back."""
    head = [_COUNT.pack(len(inputs)), struct.pack(f"<{2 * len(inputs)}I", *(v for i, b in inputs.items() for v in (i, len(b))))]
    return b"".join([*head, *inputs.values()])


def unpack_inputs(value: bytes) -> dict[int, bytes]:
    """pack_inputs' inverse; a value that does not add up is refused (ValueError), never half read."""
    (n,) = _COUNT.unpack_from(value)
    pairs = struct.unpack_from(f"<{2 * n}I", value, _COUNT.size)
    out, pos = {}, _COUNT.size + 8 * n
    for index, length in zip(pairs[::2], pairs[1::2], strict=True):
        out[index] = value[pos : pos + length]
        pos += length
    if pos != len(value):
        raise ValueError(f"a packed chunk of {len(value)} bytes holds {pos}")
    return out


_SIDE = 784  # bytes of a 28x28 digit
_BITS = _SIDE // 8


def pack_digits(digits: dict[int, bytes]) -> bytes:
    """A chunk's 784-byte digits as one value: their count, indices and ink counts, a bit per pixel (ink or
    not), then the ink values in order. Most of a centred digit is background, so this is about a third of the
    raw bytes (MNIST: 270 of 784), at a few microseconds a digit in NumPy."""
    a = np.frombuffer(b"".join(digits.values()), dtype=np.uint8).reshape(len(digits), _SIDE)
    ink = a != 0
    return b"".join([_COUNT.pack(len(digits)), np.fromiter(digits, dtype="<u4", count=len(digits)).tobytes(),
                     ink.sum(axis=1).astype("<u2").tobytes(), np.packbits(ink, axis=1).tobytes(), a[ink].tobytes()])


def unpack_digits(value: bytes) -> dict[int, bytes]:
    """pack_digits' inverse; a value that does not add up is refused (ValueError)."""
    (n,) = _COUNT.unpack_from(value)
    pos = _COUNT.size
    index = np.frombuffer(value, "<u4", n, pos)
    counts = np.frombuffer(value, "<u2", n, pos + 4 * n)
    bits = np.frombuffer(value, np.uint8, n * _BITS, pos + 6 * n).reshape(n, _BITS)
    start, total = pos + (6 + _BITS) * n, int(counts.sum())
    if start + total != len(value):
        raise ValueError(f"a packed set of {n} digits holds {start + total} bytes, not {len(value)}")
    ink = np.unpackbits(bits, axis=1, count=_SIDE).astype(bool)
    if not np.array_equal(ink.sum(axis=1), counts):
        raise ValueError("a packed digit's ink count disagrees with its pixels")
    a = np.zeros((n, _SIDE), np.uint8)
    a[ink] = np.frombuffer(value, np.uint8, total, start)
    return {int(i): a[k].tobytes() for k, i in enumerate(index)}


def new_job_id() -> str:
    """A job id with 128 random bits (32 hex digits)."""
    return secrets.token_hex(16)


def valid_job_id(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def webhook_state(m: dict[str, str]) -> dict[str, Any]:
    """waiting (the job runs), pending (being delivered), delivered or failed; attempts; the last error."""
    status = m.get("webhook_status") or ("pending" if m["status"] in FINAL else "waiting")
    state = {"status": status, "attempts": int(m.get("webhook_attempts", 0))}
    return {**state, "error": m["webhook_error"]} if m.get("webhook_error") else state


class JobStore:
    """Reads and writes jobs; used by the web (create, read, cancel) and the worker (process)."""

    def __init__(self, client: redis.Redis, ttl_seconds: int, on_end: Callable[[JobStore, str], None] | None = None):
        """`on_end(store, job_id)` is called once when a job with a callback URL ends (its webhook)."""
        self.r = client
        self.ttl = ttl_seconds
        self.on_end = on_end
        self._expires: dict[str, int] = {}  # job id -> its keys' expiry (unix time; see _expire_at)
        self._end_script = client.register_script(END_SCRIPT)
        self._set_if_exists = client.register_script(SET_IF_EXISTS)
        self._run_script = client.register_script(RUN_SCRIPT)

    @staticmethod
    def key(job_id: str, part: str) -> str:
        return f"df:{{{job_id}}}:{part}"

    # -- creation (web) -------------------------------------------------------------------------
    def create(self, total: int, chunks: int, kind: str, model: dict[str, Any], job_id: str | None = None,
               single: tuple[str, bytes] | None = None, client: str | None = None,
               callback_url: str | None = None, plan: list[int] | None = None) -> str:
        """A new job; `single` = (name, raw input) stores a one-image job in the same round trip.
        `client` names the API key that owns it; `callback_url` receives its end event (webhooks); `plan` is
        the chunks' sizes in order (where each image's packed digits and kept preview are found)."""
        job_id = job_id or new_job_id()
        now = time.time()
        meta = {
            "status": QUEUED,
            "total": total,
            "chunks": chunks,
            "kind": kind,
            "created_at": now,
            "expires_at": now + self.ttl,
            "model": json.dumps(model),
            **({"plan": ",".join(map(str, plan))} if plan else {}),
            **({"client": client} if client else {}),
            **({"callback_url": callback_url} if callback_url else {}),
        }
        expire_at = self._remember_expiry(job_id, meta["expires_at"])
        pipe = self.r.pipeline()
        pipe.hset(self.key(job_id, "job"), mapping=meta)
        pipe.expireat(self.key(job_id, "job"), expire_at)
        if single is not None:
            pipe.rpush(self.key(job_id, "names"), single[0])
            pipe.set(self.key(job_id, "in:0"), pack_inputs({0: single[1]}))
            for part in ("names", "in:0"):
                pipe.expireat(self.key(job_id, part), expire_at)
        pipe.execute()
        if kind != "single":  # outside the transaction: other Redis Cluster slots than the job's keys
            pipe = self.r.pipeline(transaction=False)
            pipe.zadd(ACTIVE, {job_id: now})
            pipe.hincrby(JOBS, QUEUED, 1)
            pipe.zadd(self.client_key(client), {job_id: now})
            pipe.expire(self.client_key(client), self.ttl + 60)  # the newest job's lifetime
            pipe.execute()
        return job_id

    def add_chunk(self, job_id: str, chunk: int, names: list[str], inputs: dict[int, bytes],
                  errors: dict[int, dict[str, str]]) -> None:
        """Store one chunk's file names (in order), raw inputs, and the errors found while reading."""
        expire_at = self._expire_at(job_id)
        pipe = self.r.pipeline(transaction=False)
        if names:
            pipe.rpush(self.key(job_id, "names"), *names)
            pipe.expireat(self.key(job_id, "names"), expire_at)
        if inputs:
            pipe.set(self.key(job_id, f"in:{chunk}"), pack_inputs(inputs), exat=expire_at)
        pipe.execute()
        if errors:
            self.write_results(job_id, {i: {"error": e} for i, e in errors.items()}, {})

    def _expire_at(self, job_id: str) -> int:
        known = self._expires.get(job_id)  # .get: another thread may clear the dict in between
        if known is not None:
            return known
        exp = self.r.hget(self.key(job_id, "job"), "expires_at")
        return self._remember_expiry(job_id, float(exp) if exp else None)

    def _remember_expiry(self, job_id: str, expires_at: float | None) -> int:
        """A job's keys' expiry from its expires_at (fixed when it was created, so it is kept per process)."""
        if expires_at is None:
            return int(time.time() + self.ttl)
        if len(self._expires) >= 1024:
            self._expires.clear()
        self._expires[job_id] = at = int(expires_at) + 1
        return at

    # -- processing (worker) --------------------------------------------------------------------
    def chunk_inputs(self, job_id: str, chunk: int) -> dict[int, bytes]:
        return self.begin_chunk(job_id, chunk)[2]

    def begin_chunk(self, job_id: str, chunk: int) -> tuple[str | None, bool, dict[int, bytes]]:
        """What a chunk task needs first, in one round trip: the job's status, whether it has started, and the
        chunk's inputs ({} once the chunk is done)."""
        k, in_key = self.key(job_id, "job"), self.key(job_id, f"in:{chunk}")
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(k, "status", "started_at", "expires_at")
        pipe.get(in_key)
        (status, started, exp), raw = pipe.execute(raise_on_error=False)
        if status is not None:
            self._remember_expiry(job_id, float(exp) if exp else None)
        if isinstance(raw, redis.ResponseError):  # WRONGTYPE: stored by a web of before pack_inputs
            inputs = {int(i): v for i, v in self.r.hgetall(in_key).items()}
        else:
            inputs = unpack_inputs(raw) if raw else {}
        return (status.decode() if status else None), started is not None, inputs

    def count_delivery(self, job_id: str, chunk: int) -> int:
        k = self.key(job_id, f"tries:{chunk}")
        pipe = self.r.pipeline()
        pipe.incr(k)
        pipe.expire(k, self.ttl)
        return int(pipe.execute()[0])

    def mark_running(self, job_id: str) -> None:
        k = self.key(job_id, "job")
        if self.r.hsetnx(k, "started_at", time.time()) and self._run_script(keys=[k]):
            self.r.hincrby(JOBS, RUNNING, 1)

    def status(self, job_id: str) -> str | None:
        s = self.r.hget(self.key(job_id, "job"), "status")
        return s.decode() if s else None

    def write_results(self, job_id: str, results: dict[int, dict[str, Any]], images: dict[int, bytes],
                      done_chunk: int | None = None, worker: str | None = None,
                      previews: dict[int, bytes] | None = None, previews_are_inputs: bool = False) -> None:
        """Store results by index (idempotent), drop the chunk's inputs, finish the job if complete. A done
        chunk's digits are one packed value; with `previews_are_inputs` (every input of the chunk is its own
        preview) its inputs are kept as the previews instead of being dropped and written again."""
        expire_at = self._expire_at(job_id)
        pipe = self.r.pipeline(transaction=False)
        res_key, err_key, img_key = (self.key(job_id, p) for p in ("res", "err", "img"))
        keep_inputs = previews_are_inputs and done_chunk is not None  # the inputs stay, as src:{chunk}
        if previews and not keep_inputs:
            pipe.hset(self.key(job_id, "prev"), mapping={str(i): b for i, b in previews.items()})
            pipe.expireat(self.key(job_id, "prev"), expire_at)
        if results:
            pipe.hset(res_key, mapping={str(i): json.dumps(v, separators=(",", ":")) for i, v in results.items()})
            errors = [str(i) for i, v in results.items() if "error" in v]
            if errors:
                pipe.hset(err_key, mapping=dict.fromkeys(errors, 1))
            count_images(pipe, results.values())  # once a chunk: a re-delivery finds its inputs gone
        if images and done_chunk is not None:
            pipe.set(self.key(job_id, f"img:{done_chunk}"), pack_digits(images), exat=expire_at)
        elif images:
            pipe.hset(img_key, mapping={str(i): b for i, b in images.items()})
        for k in (res_key, err_key, img_key):
            pipe.expireat(k, expire_at)
        if done_chunk is not None:
            in_key = self.key(job_id, f"in:{done_chunk}")
            if keep_inputs:
                # EVAL, not a registered script: in a pipeline redis-py sends SCRIPT EXISTS first, a round trip more
                pipe.eval(KEEP_SOURCES, 2, in_key, self.key(job_id, f"src:{done_chunk}"))
            else:
                pipe.delete(in_key)
            if worker:
                pipe.hset(self.key(job_id, "by"), str(done_chunk), worker)
                pipe.expireat(self.key(job_id, "by"), expire_at)
            pipe.zadd(ACTIVE, {job_id: time.time()}, xx=True)  # progress: not stale
        self._progress(pipe, job_id)  # read after the writes, in the same round trip
        self._finish(job_id, *pipe.execute()[-3:])

    def _progress(self, pipe, job_id: str) -> None:
        pipe.hmget(self.key(job_id, "job"), "status", "total")
        pipe.hlen(self.key(job_id, "res"))
        pipe.hlen(self.key(job_id, "err"))

    def finish_if_complete(self, job_id: str) -> str | None:
        """Mark the job finished if every image has a result; returns its final state if this call did it."""
        pipe = self.r.pipeline()
        self._progress(pipe, job_id)
        return self._finish(job_id, *pipe.execute())

    def _finish(self, job_id: str, status_total: list, done: int, failed: int) -> str | None:
        """finish_if_complete, given the job's status and total and its result and error counts."""
        status, total = status_total
        if status is None or status.decode() in FINAL or total is None or done < int(total):
            return None
        final = FAILED if failed == done and done > 0 else SUCCEEDED
        ended = self._end(job_id, final, started=True)
        if not ended:  # a concurrent finisher or a cancel came first
            return None
        self._retire(job_id, final, callback=ended == 2)
        return final

    def _end(self, job_id: str, final: str, started: bool) -> int:
        """END_SCRIPT: 0 if the job had ended already, 1 if this call ended it, 2 and it has a callback URL."""
        return int(self._end_script(keys=[self.key(job_id, "job")], args=[final, time.time(), int(started)]))

    def _retire(self, job_id: str, final: str, callback: bool) -> None:
        """After this process ended the job: hand over its webhook, then take it out of df:active (counted once).
        If the hand-over fails the job stays there, and the reconcile scan calls settle() for it later."""
        if callback and not self._hand_over(job_id):
            return
        if self.forget(job_id):  # only the call that took the job out of df:active counts it
            self.r.hincrby(JOBS, final, 1)

    def _hand_over(self, job_id: str) -> bool:
        """Give the ended job's webhook to on_end; False (logged) if that failed."""
        if self.on_end is None:
            return True
        try:
            self.on_end(self, job_id)
            return True
        except Exception:
            log.warning("job %s: webhook not handed over; the reconcile scan tries again", job_id, exc_info=True)
            return False

    def settle(self, job_id: str) -> None:
        """A job that ended but is still in df:active (its webhook hand-over failed or its process died): retry."""
        status, callback = self.r.hmget(self.key(job_id, "job"), "status", "callback_url")
        if status is None or status.decode() not in FINAL:
            self.forget(job_id)
            return
        self._retire(job_id, status.decode(), callback=callback is not None)

    def record_webhook(self, job_id: str, status: str, attempts: int, error: str | None = None) -> None:
        """The delivery state of the job's webhook (pending, delivered, failed), unless the job is gone."""
        self._set_if_exists(keys=[self.key(job_id, "job")],
                            args=["webhook_status", status, "webhook_attempts", attempts, "webhook_error", error or ""])

    # -- drawings: the lean path (digitflow/drawings.py) -----------------------------------------
    @staticmethod
    def _drawing_fields(d: Drawing) -> dict[str, Any]:
        return {"total": 1, "chunks": 1, "kind": "single", "created_at": repr(d.created_at),
                "expires_at": repr(d.expires_at), "model": d.model, "name": d.name,
                **({"client": d.client} if d.client else {})}

    def queue_drawing(self, pipe, d: Drawing) -> None:
        """In the caller's pipeline: the record of a drawing not answered yet (the web answers 202 with its id);
        it never turns a finished record back to queued."""
        k = self.key(d.job_id, "job")
        pipe.hset(k, mapping={**self._drawing_fields(d), **({"entry": d.entry_id} if d.entry_id else {})})
        pipe.hsetnx(k, "status", QUEUED)
        pipe.expireat(k, int(d.expires_at) + 1)

    def finish_drawings(self, pipe, done: list[tuple[Drawing, dict[str, Any], bytes | None]]) -> None:
        """In the caller's pipeline: each drawing's finished record (one HSET with the result and the digit in
        it, and its expiry), and the images counter. A second delivery writes the same record again."""
        now = repr(time.time())
        for d, result, image in done:
            k = self.key(d.job_id, "job")
            fields = {**self._drawing_fields(d), "status": FAILED if "error" in result else SUCCEEDED,
                      "started_at": now, "finished_at": now, "result": json.dumps(result, separators=(",", ":"))}
            if image is not None:
                fields["image"] = image
            pipe.hset(k, mapping=fields)
            pipe.expireat(k, int(d.expires_at) + 1)
        count_images(pipe, (result for _, result, _ in done))

    def drawing_answer(self, job_id: str) -> tuple[str | None, dict[str, Any] | None, bytes | None]:
        """(status, result, digit) from a drawing's record."""
        status, raw, image = self.r.hmget(self.key(job_id, "job"), ["status", "result", "image"])
        return (status.decode() if status else None), (json.loads(raw) if raw else None), image

    def set_label(self, job_id: str, index: int, label: int | None) -> None:
        """A reviewer's label for one item (None clears it); it lives as long as the job."""
        k = self.key(job_id, "labels")
        if label is None:
            self.r.hdel(k, str(index))
            return
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(k, str(index), label)
        pipe.expireat(k, self._expire_at(job_id))
        pipe.execute()

    def cancel(self, job_id: str) -> bool:
        """Cancel an unfinished job and drop its inputs; False if it had ended already."""
        k = self.key(job_id, "job")
        ended = self._end(job_id, CANCELLED, started=False)
        pipe = self.r.pipeline()
        chunks, entry = self.r.hmget(k, "chunks", "entry")
        for c in range(int(chunks or 0)):
            pipe.delete(self.key(job_id, f"in:{c}"))
        if entry and ended:  # a drawing not answered yet: no worker takes it (nor takes it over) now
            pipe.xack(STREAM, GROUP, entry)
            pipe.xdel(STREAM, entry)
        pipe.execute()
        if ended:  # else whoever ended it takes it out of df:active
            self._retire(job_id, CANCELLED, callback=ended == 2)
        return bool(ended)

    def delete(self, job_id: str) -> None:
        chunks, client = self.r.hmget(self.key(job_id, "job"), "chunks", "client")
        chunks = int(chunks or 0)
        self.r.zrem(self.client_key(client.decode() if client else None), job_id)
        parts = ["job", "names", "res", "err", "img", "labels", "prev", "by"]
        parts += [f"{p}:{c}" for c in range(chunks) for p in ("in", "tries", "img", "src")]
        self.r.delete(*(self.key(job_id, p) for p in parts))
        self.forget(job_id)

    # -- reconciliation (worker/reconcile.py) -----------------------------------------------------
    def stale_jobs(self, older_than: float) -> list[str]:
        """Unfinished bulk jobs without progress for older_than seconds."""
        return [j.decode() for j in self.r.zrangebyscore(ACTIVE, 0, time.time() - older_than)]

    def touch(self, job_id: str) -> None:
        self.r.zadd(ACTIVE, {job_id: time.time()}, xx=True)

    def forget(self, job_id: str) -> bool:
        """Take a job out of the unfinished ones; True if it was there."""
        return bool(self.r.zrem(ACTIVE, job_id))

    def pending_chunks(self, job_id: str) -> list[int]:
        """Chunks whose inputs are still stored, i.e. not yet done."""
        chunks = int(self.r.hget(self.key(job_id, "job"), "chunks") or 0)
        pipe = self.r.pipeline(transaction=False)
        for c in range(chunks):
            pipe.exists(self.key(job_id, f"in:{c}"))
        return [c for c, there in enumerate(pipe.execute()) if there]

    # -- reading (web) ----------------------------------------------------------------------------
    @staticmethod
    def client_key(client: str | None) -> str:
        """The sorted set of a client's bulk jobs by creation time (`-`: the open service's one client)."""
        return f"df:jobs:{client or '-'}"

    def client_jobs(self, client: str | None, offset: int, limit: int) -> tuple[list[str], int]:
        """A page of the client's bulk jobs, newest first, and how many it has (expired ones pruned)."""
        k = self.client_key(client)
        pipe = self.r.pipeline(transaction=False)
        pipe.zremrangebyscore(k, "-inf", time.time() - self.ttl)
        pipe.zcard(k)
        pipe.zrevrange(k, offset, offset + limit - 1)
        _, total, ids = pipe.execute()
        return [i.decode() for i in ids], int(total)

    def get(self, job_id: str) -> dict[str, Any] | None:
        pipe = self.r.pipeline()
        pipe.hgetall(self.key(job_id, "job"))
        pipe.hlen(self.key(job_id, "res"))
        pipe.hlen(self.key(job_id, "err"))
        pipe.hlen(self.key(job_id, "labels"))
        meta, done, failed, reviewed = pipe.execute()
        if not meta:
            return None
        m = {k.decode(): v.decode() for k, v in meta.items() if k != b"image"}  # a drawing's digit is binary
        if "result" in m:  # a drawing: its one result is in its record
            done, failed = 1, int("error" in json.loads(m["result"]))

        def ts(name: str) -> str | None:
            return iso(float(m[name])) if name in m else None

        return {
            "id": job_id,
            "status": m["status"],
            "total": int(m["total"]),
            "done": int(done),
            "failed": int(failed),
            "reviewed": int(reviewed),
            "created_at": ts("created_at"),
            "started_at": ts("started_at"),
            "finished_at": ts("finished_at"),
            "expires_at": ts("expires_at"),
            "model": json.loads(m["model"]),
            **{name: m[name] for name in ("client", "callback_url") if name in m},
            **({"webhook": webhook_state(m)} if "callback_url" in m else {}),
        }

    def results(self, job_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Items offset..offset+limit-1 (those that exist): index, filename, raw result or None."""
        names = self.r.lrange(self.key(job_id, "names"), offset, offset + limit - 1)
        if not names:
            return self._drawing_items(job_id) if offset == 0 else []
        indices = [str(offset + i) for i in range(len(names))]
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(self.key(job_id, "res"), indices)
        pipe.hmget(self.key(job_id, "labels"), indices)
        raw, labels = pipe.execute()
        return [
            {"index": offset + i, "filename": n.decode(), "result": json.loads(r) if r else None,
             "label": int(lab) if lab is not None else None}
            for i, (n, r, lab) in enumerate(zip(names, raw, labels, strict=True))
        ]

    def _drawing_items(self, job_id: str) -> list[dict[str, Any]]:
        """The one item of a drawing (from its record); [] for any other job."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(self.key(job_id, "job"), ["name", "result"])
        pipe.hget(self.key(job_id, "labels"), "0")
        (name, raw), label = pipe.execute()
        if name is None:
            return []
        return [{"index": 0, "filename": name.decode(), "result": json.loads(raw) if raw else None,
                 "label": int(label) if label is not None else None}]

    def result(self, job_id: str, index: int) -> dict[str, Any] | None:
        raw = self.r.hget(self.key(job_id, "res"), str(index))
        if raw is None and index == 0:  # a drawing keeps its result in its record
            raw = self.r.hget(self.key(job_id, "job"), "result")
        return json.loads(raw) if raw else None

    def _chunks_of(self, job_id: str, indices: list[int]) -> dict[int, list[int]]:
        """chunk -> which of `indices` it holds, from the job's plan (every chunk for a job stored without one)."""
        plan, chunks = self.r.hmget(self.key(job_id, "job"), "plan", "chunks")
        if not plan:
            return dict.fromkeys(range(int(chunks or 0)), indices)
        ends = np.cumsum([int(v) for v in plan.split(b",")])
        out: dict[int, list[int]] = {}
        for i, c in zip(indices, np.searchsorted(ends, indices, side="right").tolist(), strict=True):
            out.setdefault(c, []).append(i)
        return out

    def _from_chunks(self, job_id: str, part: str, indices: list[int], unpack) -> dict[int, bytes]:
        """The values of `indices` found in the chunks' packed `part` values (img or src)."""
        by_chunk = self._chunks_of(job_id, indices)
        pipe = self.r.pipeline(transaction=False)
        for c in by_chunk:
            pipe.get(self.key(job_id, f"{part}:{c}"))
        found: dict[int, bytes] = {}
        for wanted, value in zip(by_chunk.values(), pipe.execute(), strict=True):
            if value:
                packed = unpack(value)
                found.update((i, packed[i]) for i in wanted if i in packed)
        return found

    def images(self, job_id: str, indices: list[int]) -> list[bytes | None]:
        found = self.r.hmget(self.key(job_id, "img"), [str(i) for i in indices]) if indices else []
        missing = [i for i, v in zip(indices, found, strict=True) if v is None]
        if missing:
            packed = self._from_chunks(job_id, "img", missing, unpack_digits)
            found = [v if v is not None else packed.get(i) for i, v in zip(indices, found, strict=True)]
        if 0 in indices and found[indices.index(0)] is None:  # a drawing keeps its digit in its record
            found[indices.index(0)] = self.r.hget(self.key(job_id, "job"), "image")
        return found

    def image(self, job_id: str, index: int) -> bytes | None:
        return self.images(job_id, [index])[0]

    def preview(self, job_id: str, index: int) -> bytes | None:
        found = self.r.hget(self.key(job_id, "prev"), str(index))
        return found if found is not None else self._from_chunks(job_id, "src", [index], unpack_inputs).get(index)
