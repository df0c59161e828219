"""Webhook events, the parts without a framework: the event of a job that ended, its signature, the retry schedule.

Where an event may go is decided by digitflow/callback_url.py; the web and the workers queue and send it.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digitflow.jobstore import JobStore

GIVE_UP_AFTER = 3600.0  # seconds after the job ended; deliveries are retried until then
EVENT_TYPES = {"succeeded": "job.succeeded", "failed": "job.failed", "cancelled": "job.cancelled"}


def job_object(job: dict[str, Any]) -> dict[str, Any]:
    """The job as GET /api/v1/jobs/{id} answers it (the links of web/api.py's _job_view)."""
    base = f"/api/v1/jobs/{job['id']}"
    return {**job, "links": {"self": base, "results": f"{base}/results", "csv": f"{base}/results.csv",
                             "page": f"/jobs/{job['id']}"}}


def end_event(store: JobStore, job_id: str) -> tuple[str, dict[str, Any]] | None:
    """(callback URL, event) for a job that ended and has a callback; None otherwise. The event id and time
    come from the job, so an event built twice (a retried hand-over) is the same event for the receiver."""
    job = store.get(job_id)
    if not job or not job.get("callback_url") or job["status"] not in EVENT_TYPES:
        return None
    event = {"id": f"evt_{job_id}", "type": EVENT_TYPES[job["status"]], "created_at": job["finished_at"],
             "data": job_object(job)}
    return job["callback_url"], event


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The Digitflow-Signature header: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def retry_delay(attempt: int, age: float, cap: float) -> float | None:
    """Seconds before the next try after `attempt` failed ones (1-1.5 s, then doubling up to `cap`), or None
    once the event is GIVE_UP_AFTER old."""
    if age >= GIVE_UP_AFTER:
        return None
    delay = min(cap, 2.0 ** (attempt - 1)) * random.uniform(1.0, 1.5)
    return max(0.5, min(delay, GIVE_UP_AFTER - age))
