"""Webhook delivery: POST a job's end event, signed, to its callback URL; retried with backoff by Celery.

Each try checks the URL again (digitflow/callback_url.py: form, WEBHOOK_ALLOWED_HOSTS, every resolved
address public) and connects to one of the addresses that check returned, so a DNS answer that changes
between the check and the connection (rebinding) cannot send it elsewhere; the Host header and the TLS
name stay the URL's. Redirects are not followed: a 3xx, like every answer other than 2xx, is a failed try.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import urllib3
from urllib3.exceptions import ConnectTimeoutError

from digitflow import callback_url as urls
from digitflow import webhooks as hooks
from digitflow.celery_app import BULK_QUEUE, WEBHOOK_TASK, app
from digitflow.jobstore import JobStore
from digitflow.settings import get_settings

log = logging.getLogger(__name__)
TIMEOUT = urllib3.Timeout(connect=3.0, read=5.0)
PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 1.0}


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    error: str | None = None
    final: bool = False  # retrying cannot help: the destination is refused


def post_event(url: str, event: dict, secret: str, allowed: str) -> Attempt:
    """One try: check the URL, then POST the signed event to a checked address of its host."""
    if not secret:
        return Attempt(False, "WEBHOOK_SECRET is not set on the worker", final=True)
    try:
        cb, addresses = urls.check_callback(url, allowed)
    except urls.CallbackRefused as exc:
        return Attempt(False, exc.message, final=exc.code == urls.NOT_ALLOWED)
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {"Host": cb.host_header, "Content-Type": "application/json", "User-Agent": "digitflow-webhooks/1",
               "Digitflow-Signature": hooks.sign(body, secret, int(time.time())), "Connection": "close"}
    error = "no address"
    for ip in addresses:
        try:
            status = _post(cb, ip.compressed, headers, body)
        except ConnectTimeoutError as exc:  # also "connection refused": try the host's next address
            error = f"cannot connect to {ip.compressed}: {exc}"
            continue
        except Exception as exc:  # read timeouts, TLS and protocol errors: try again later
            return Attempt(False, f"{type(exc).__name__}: {exc}")
        return Attempt(True) if 200 <= status < 300 else Attempt(False, f"HTTP {status}")
    return Attempt(False, error)


def _post(cb: urls.Callback, ip: str, headers: dict, body: bytes) -> int:
    """POST to this address with the URL's Host (and TLS name); the answer's status, redirects not followed."""
    if cb.scheme == "https":
        name = None if cb.literal is not None else cb.host
        pool = urllib3.HTTPSConnectionPool(ip, cb.port, timeout=TIMEOUT, retries=False, maxsize=1,
                                           cert_reqs="CERT_REQUIRED", server_hostname=name)
    else:
        pool = urllib3.HTTPConnectionPool(ip, cb.port, timeout=TIMEOUT, retries=False, maxsize=1)
    with pool:
        resp = pool.urlopen("POST", cb.target, body=body, headers=headers, redirect=False, retries=False,
                            assert_same_host=False, preload_content=False)
        resp.close()
        return resp.status


def _store() -> JobStore:
    from worker.tasks import store  # imported here: worker.tasks builds its store with enqueue() below

    return store()


@app.task(name=WEBHOOK_TASK, bind=True, max_retries=None)
def deliver(self, job_id: str, url: str, event: dict) -> str:
    """Try to deliver one event; on failure schedule the next try, until GIVE_UP_AFTER since the job ended."""
    settings = get_settings()
    attempt = self.request.retries + 1
    outcome = post_event(url, event, settings.webhook_secret, settings.webhook_allowed_hosts)
    delay = None
    if not outcome.delivered and not outcome.final:
        age = time.time() - datetime.fromisoformat(event["created_at"]).timestamp()
        # Under the visibility timeout: kombu's Redis transport would re-deliver a longer-waiting task.
        delay = hooks.retry_delay(attempt, age, cap=max(1, settings.visibility_timeout // 2))
    state = "delivered" if outcome.delivered else "pending" if delay is not None else "failed"
    _store().record_webhook(job_id, state, attempt, outcome.error)
    if delay is not None:
        log.info("webhook %s try %d failed (%s); next in %.1f s", event["id"], attempt, outcome.error, delay)
        raise self.retry(countdown=delay)
    if state == "failed":
        log.warning("webhook %s to %s given up after %d tries: %s", event["id"], url, attempt, outcome.error)
    return state


def enqueue(store: JobStore, job_id: str, celery=app, queue: str = BULK_QUEUE) -> None:
    """The job store's on_end hook in the workers: build the job's end event and queue its delivery."""
    found = hooks.end_event(store, job_id)
    if found:
        celery.send_task(WEBHOOK_TASK, args=(job_id, *found), queue=queue, retry=True, retry_policy=PUBLISH_RETRY)
