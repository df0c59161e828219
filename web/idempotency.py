"""Idempotency keys on POST /api/v1/jobs and POST /api/v1/predict.

A client that sends `Idempotency-Key: <key>` and retries (after a timeout, a dropped connection) gets
the original job back instead of a second one. A key is scoped to the client (its API key's name) and
the route, and lives as long as the job it created. The first request claims the key with one
`SET NX` holding the request's fingerprint and a job id chosen before any work, so of concurrent
duplicates exactly one creates the job; the others wait for it to exist and answer with it. The same
key with a different request is a 409 `idempotency_conflict`. If the first request fails before its
job exists (a bad ZIP, say), the key is released and a retry runs afresh.

The fingerprint is what the request means, not its bytes: two multipart bodies carrying the same file
differ in their boundary, so the file names, contents and form fields are hashed instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import IO, TypeVar

import redis

from digitflow.jobstore import JobStore, new_job_id
from web.errors import ApiError

HEADER = "Idempotency-Key"
KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as Stripe's and the IETF draft's examples
T = TypeVar("T")
WAIT_FOR_ORIGINAL = 10.0  # seconds a duplicate waits for the first request's job to appear


def header_key() -> str | None:
    """The request's Idempotency-Key, validated; None without one."""
    from flask import request

    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not KEY.match(raw):
        raise ApiError(400, "invalid_idempotency_key",
                       f"`{HEADER}` must be 1-255 visible ASCII characters (no spaces)")
    return raw


def fingerprint(*parts: bytes | str | IO[bytes]) -> str:
    """SHA-256 over the parts, each framed so that moving bytes between parts changes it; file objects
    are read in blocks and rewound, so the upload can still be stored after."""
    h = hashlib.sha256()
    for part in parts:
        h.update(b"\0part\0")
        if isinstance(part, str):
            part = part.encode("utf-8", "surrogatepass")
        if isinstance(part, bytes):
            h.update(len(part).to_bytes(8, "big") + part)
            continue
        size = 0
        for block in iter(lambda fh=part: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
        h.update(size.to_bytes(8, "big"))
        part.seek(0)
    return h.hexdigest()


def canonical_json(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class Idempotency:
    def __init__(self, client: redis.Redis, ttl_seconds: int):
        self.r, self.ttl = client, ttl_seconds

    @staticmethod
    def _redis_key(client: str | None, route: str, key: str) -> str:
        scope = hashlib.sha256(f"{client or '-'}\0{route}\0{key}".encode()).hexdigest()
        return f"df:idem:{scope}"

    def claim(self, client: str | None, route: str, key: str, fingerprint: str, store: JobStore) -> tuple[str, bool]:
        """(job id, True) when this request is the first with the key and must create that job;
        (job id, False) when it repeats an earlier one whose job exists. 409 when the key was used for
        another request, or when the first is still creating its job after WAIT_FOR_ORIGINAL seconds."""
        rkey = self._redis_key(client, route, key)
        deadline = time.monotonic() + WAIT_FOR_ORIGINAL
        while True:
            job_id = new_job_id()
            if self.r.set(rkey, json.dumps({"fp": fingerprint, "job": job_id}), nx=True, ex=self.ttl):
                return job_id, True
            raw = self.r.get(rkey)
            if raw is None:  # released or expired in between: claim again
                continue
            record = json.loads(raw)
            if record["fp"] != fingerprint:
                raise ApiError(409, "idempotency_conflict",
                               f"this `{HEADER}` was already used for a different request")
            if store.status(record["job"]) is not None:
                return record["job"], False
            if record.get("created"):
                raise ApiError(404, "not_found", f"the job this `{HEADER}` created is gone (deleted or expired)")
            if time.monotonic() > deadline:
                raise ApiError(409, "idempotency_in_progress",
                               f"a request with this `{HEADER}` is still being processed; retry shortly",
                               {"Retry-After": "2"})
            time.sleep(0.05)

    def create_once(self, client: str | None, route: str, key: str, job_id: str, store: JobStore,
                    create: Callable[[], T]) -> T:
        """Run the first request's `create` (which makes job `job_id`). If it fails before the job
        exists, the key is released so a retry runs afresh; once it exists, a repeat finds it."""
        try:
            result = create()
        finally:
            with contextlib.suppress(redis.RedisError):  # Redis down: the key simply expires
                if store.status(job_id) is None:
                    self.release(client, route, key, job_id)
        self.created(client, route, key)
        return result

    def created(self, client: str | None, route: str, key: str) -> None:
        """The first request's job exists: a later miss means it was deleted, not that it is coming."""
        rkey = self._redis_key(client, route, key)
        raw = self.r.get(rkey)
        if raw is not None:
            self.r.set(rkey, json.dumps({**json.loads(raw), "created": True}), xx=True, keepttl=True)

    def release(self, client: str | None, route: str, key: str, job_id: str) -> None:
        """The first request failed before its job existed: let a retry run afresh."""
        rkey = self._redis_key(client, route, key)
        raw = self.r.get(rkey)
        if raw is not None and json.loads(raw)["job"] == job_id:
            self.r.delete(rkey)
