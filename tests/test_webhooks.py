"""Webhooks: the callback URL checks as pure functions (private, link-local, metadata and other ranges are only
ever classified, never contacted), a job ending exactly once on real Redis, and signed deliveries from the
real workers to receivers on 127.0.0.1 (retries, no redirects, refusals at submit and at send time)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
import time
from functools import partial

import pytest
import requests
from celery import Celery

from digitflow import callback_url as urls
from digitflow import webhooks as hooks
from digitflow.jobstore import ACTIVE, CANCELLED, FINAL, JobStore
from tests.conftest import WEBHOOK_SECRET, digit_png, make_zip, wait_job
from worker.reconcile import scan_once
from worker.webhooks import enqueue, post_event

MODEL = {"version": "test", "architecture": "tiny", "test_accuracy": None}

# -- the classification (pure) ----------------------------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("172.31.255.255", "private"), ("192.168.1.1", "private"), ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"), ("100.100.100.200", "metadata"), ("192.0.0.192", "metadata"),
    ("169.254.1.1", "link-local"), ("100.64.0.1", "carrier-grade NAT"), ("100.127.255.255", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"), ("255.255.255.255", "reserved"), ("240.0.0.1", "reserved"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("198.18.0.1", "benchmarking"),
    ("192.0.2.1", "documentation"), ("203.0.113.9", "documentation"), ("192.0.0.8", "protocols"),
    ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("fc00::1", "unique local"), ("fd12:3456::1", "unique local"), ("fd00:ec2::254", "metadata"),
    ("::ffff:127.0.0.1", "IPv4-mapped"), ("::ffff:10.0.0.1", "IPv4-mapped"), ("::ffff:8.8.8.8", "IPv4-mapped"),
    ("::127.0.0.1", "IPv4-compatible"), ("64:ff9b::7f00:1", "NAT64"), ("64:ff9b::808:808", "NAT64"),
    ("64:ff9b:1::a00:1", "NAT64"), ("2002:7f00:1::1", "6to4"), ("2001::1", "Teredo"), ("2001:db8::1", "documentation"),
    ("fec0::1", "site-local"), ("ff02::1", "multicast"), ("ff0e::1", "multicast"), ("100::1", "discard"),
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "100.63.255.255", "100.128.0.1", "172.32.0.1", "11.0.0.1",
          "169.253.255.255", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "2001:4860:4860::8888"]


@pytest.mark.parametrize(("address", "why"), REFUSED, ids=[a for a, _ in REFUSED])
def test_non_public_addresses_are_refused_with_their_reason(address, why):
    reason = urls.address_refusal(ipaddress.ip_address(address))
    assert reason is not None and why in reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert urls.address_refusal(ipaddress.ip_address(address)) is None


ODD = [("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("017700000001", "127.0.0.1"),
       ("127.1", "127.0.0.1"), ("127.0.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"),
       ("127.0.0.1.", "127.0.0.1"), ("0x0a.0", "10.0.0.0"), ("3232235777", "192.168.1.1"), ("0xa9.254.0xa9fe", "169.254.169.254"),
       ("134744072", "8.8.8.8"), ("4294967296", "no address"), ("08.0.0.1", "no address"), ("1.2.3.4.5", "no address"),
       ("256.0.0.1", "no address")]


@pytest.mark.parametrize(("host", "meaning"), ODD, ids=[h for h, _ in ODD])
def test_ipv4_written_in_other_forms_is_recognised(host, meaning):
    assert urls.odd_ipv4(host) == meaning


@pytest.mark.parametrize("host", ["127.0.0.1", "8.8.8.8", "example.com", "hooks.example.org", "0day.example", "a1"])
def test_plain_addresses_and_names_are_not_odd(host):
    assert urls.odd_ipv4(host) is None


INVALID = ["file:///etc/passwd", "gopher://127.0.0.1:70/_", "ftp://example.com/", "javascript:alert(1)", "dict://x:11211/",
           "http://user:pw@example.com/", "http://example.com@127.0.0.1/", "http://", "http:///path", "http://:80/",
           "http://example.com:0/", "http://example.com:99999/", "http://exa mple.com/", "http://example.com/\n",
           "http://ex\\ample.com/", "http://a..b/", "http://%31%32%37.0.0.1/", "http://[::1/", "http://[zz::1]/",
           "http://bücher.example/", "not a url", "", "http://" + "a" * 64 + ".com/",
           "https://example.com/" + "a" * 2048]


@pytest.mark.parametrize("url", INVALID, ids=range(len(INVALID)))
def test_malformed_urls_and_other_schemes_are_invalid(url):
    with pytest.raises(urls.CallbackRefused) as exc:
        urls.parse_callback(url)
    assert exc.value.code == urls.INVALID


def test_a_parsed_url_keeps_host_port_and_target():
    cb = urls.parse_callback("https://Hooks.Example.COM.:8443/in/?a=1&b=2#frag")
    assert (cb.scheme, cb.host, cb.port, cb.target, cb.host_header) == (
        "https", "hooks.example.com", 8443, "/in/?a=1&b=2", "hooks.example.com:8443")
    cb = urls.parse_callback("http://[2606:4700:0:0::1111]/")
    assert (cb.host, cb.port, cb.target, cb.host_header) == ("2606:4700::1111", 80, "/", "[2606:4700::1111]")


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://127.0.0.2:8080/", "http://[::1]:9/", "http://0x7f000001/",
                                 "http://2130706433/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
                                 "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
                                 "http://100.64.0.1/", "http://10.0.0.1/", "http://[fe80::1%25eth0]/", "http://0/",
                                 "http://localhost:9/"])
def test_check_refuses_loopback_private_and_metadata_destinations(url):
    """Literal addresses are classified without any lookup; `localhost` resolves locally to loopback."""
    with pytest.raises(urls.CallbackRefused) as exc:
        urls.check_callback(url, "")
    assert exc.value.code == urls.NOT_ALLOWED


def test_public_literal_addresses_pass_the_check_without_a_lookup():
    cb, addresses = urls.check_callback("https://93.184.215.14/hook", "")
    assert cb.literal is not None and addresses == [ipaddress.ip_address("93.184.215.14")]


def test_every_resolved_address_must_be_public():
    public, private = ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.1")
    urls.check_addresses("a.example", [public, ipaddress.ip_address("1.1.1.1")])
    for addresses in ([public, private], [private], []):
        with pytest.raises(urls.CallbackRefused):
            urls.check_addresses("a.example", addresses)


def test_allowed_hosts_name_receivers_with_or_without_a_port():
    allowed = "127.0.0.1:8001, hooks.internal ,[::1]:9000"
    assert urls.parse_allowed(allowed) == {("127.0.0.1", 8001), ("hooks.internal", None), ("::1", 9000)}
    assert urls.check_callback("http://127.0.0.1:8001/x", allowed)[1] == [ipaddress.ip_address("127.0.0.1")]
    assert urls.check_callback("http://[::1]:9000/", allowed)[1] == [ipaddress.ip_address("::1")]
    for url in ("http://127.0.0.1:8002/", "http://127.0.0.1/", "http://127.0.0.2:8001/", "http://[::1]:9001/",
                "http://2130706433:8001/", "http://localhost:8001/"):
        with pytest.raises(urls.CallbackRefused):
            urls.check_callback(url, allowed)
    with pytest.raises(ValueError, match="WEBHOOK_ALLOWED_HOSTS"):
        urls.parse_allowed("ok.example,bad host")


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"id":"evt_1"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert hooks.sign(body, "s3cret", 1700000000) == f"t=1700000000,v1={expected}"


def test_retries_start_within_two_seconds_double_and_stop_after_about_an_hour():
    assert all(1.0 <= hooks.retry_delay(1, 0.0, cap=150) <= 1.5 for _ in range(50))
    delays, age = [], 0.0
    while (delay := hooks.retry_delay(len(delays) + 1, age, cap=150)) is not None:
        delays.append(delay)
        age += delay
    assert delays[1] >= 2 and delays[2] >= 4 and max(delays) <= 150 * 1.5
    assert age == pytest.approx(hooks.GIVE_UP_AFTER) and 20 < len(delays) < 60


# -- ending a job once (real Redis) ----------------------------------------------------------------------


def _complete_job(store: JobStore, callback: str | None = "http://127.0.0.1:1/") -> str:
    job = store.create(total=2, chunks=2, kind="bulk", model=MODEL, callback_url=callback)
    for c in range(2):
        store.add_chunk(job, c, [f"{c}.png"], {c: b"raw"}, {})
    return job


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_finishers_and_a_cancel_end_a_job_exactly_once(redis_client, round_):
    ended = []
    store = JobStore(redis_client, ttl_seconds=600, on_end=lambda st, job_id: ended.append(job_id))
    job = _complete_job(store)
    assert store.get(job)["webhook"] == {"status": "waiting", "attempts": 0}
    store.r.hset(store.key(job, "res"), mapping={"0": "{}", "1": "{}"})  # every result there, not finished yet
    start = threading.Barrier(8)
    outcomes = []

    def finish():
        start.wait()
        outcomes.append(store.finish_if_complete(job))

    def cancel():
        start.wait()
        outcomes.append(CANCELLED if store.cancel(job) else None)

    threads = [threading.Thread(target=finish if (i + round_) % 4 else cancel) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1 and ended == [job], outcomes
    got = store.get(job)
    assert got["status"] == winners[0] and got["webhook"] == {"status": "pending", "attempts": 0}
    assert redis_client.zscore(ACTIVE, job) is None
    assert store.finish_if_complete(job) is None and store.cancel(job) is False and ended == [job]


def test_a_job_without_a_callback_calls_no_hook_and_state_is_not_written_to_a_deleted_job(redis_client):
    ended = []
    store = JobStore(redis_client, ttl_seconds=600, on_end=lambda st, job_id: ended.append(job_id))
    job = _complete_job(store, callback=None)
    assert store.cancel(job) and ended == [] and "webhook" not in store.get(job)
    store.delete(job)
    store.record_webhook(job, "delivered", 1)
    assert not redis_client.exists(store.key(job, "job"))


# -- delivery (real workers, receivers on 127.0.0.1) -----------------------------------------------------


@pytest.fixture
def hooks_on(api, receivers):
    """The service and two receivers that have received nothing yet."""
    for r in receivers:
        r.reset()
    yield api, receivers
    for r in receivers:
        r.reset()


def _verify(received, before: int) -> dict:
    """What a receiver does: check the signature over "<t>.<body>" and the timestamp, then parse the event."""
    assert received.method == "POST" and received.headers["Content-Type"] == "application/json"
    parts = dict(item.split("=", 1) for item in received.headers["Digitflow-Signature"].split(","))
    expected = hmac.new(WEBHOOK_SECRET.encode(), parts["t"].encode() + b"." + received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert before <= int(parts["t"]) <= time.time() + 1
    return received.event


def _submit(api: str, files: list, callback: str | None) -> requests.Response:
    data = {"callback_url": callback} if callback is not None else {}
    return requests.post(f"{api}/api/v1/jobs", files=files, data=data, timeout=60)


def _delivered(api: str, job_id: str, attempts: int, timeout: float = 60) -> dict:
    """The job, once its webhook state says delivered (after `attempts` tries)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{api}/api/v1/jobs/{job_id}", timeout=10).json()
        if job["webhook"]["status"] != "pending" and job["status"] in FINAL:
            assert job["webhook"] == {"status": "delivered", "attempts": attempts}, job["webhook"]
            return job
        time.sleep(0.1)
    raise AssertionError(f"webhook of {job_id} not delivered in {timeout}s")


@pytest.mark.parametrize("kind", ["succeeded", "failed-in-the-worker", "failed-while-stored"])
def test_a_job_end_sends_one_signed_event_with_the_job(hooks_on, mnist_test, kind):
    api, (receiver, _) = hooks_on
    x, _ = mnist_test
    files = {
        "succeeded": [("file", ("a.png", digit_png(x[0]))), ("file", ("b.png", digit_png(x[1])))],
        "failed-in-the-worker": [("file", ("a.png", b"this is not an image"))],
        # every entry refused while the web stores the upload: the web itself ends the job
        "failed-while-stored": [("file", ("n.zip", make_zip({"inner.zip": make_zip({"a.png": digit_png(x[0])})})))],
    }[kind]
    before = int(time.time())
    r = _submit(api, files, receiver.url + "/hooks/digitflow?source=test")
    assert r.status_code == 202, r.text
    assert r.json()["callback_url"] == receiver.url + "/hooks/digitflow?source=test"
    job_id = r.json()["id"]
    job = wait_job(api, job_id)
    (received,) = receiver.wait_for(job_id, 1)
    assert received.path == "/hooks/digitflow?source=test"
    event = _verify(received, before)
    assert event["type"] == "job." + ("succeeded" if kind == "succeeded" else "failed") == "job." + job["status"]
    assert event["id"] == f"evt_{job_id}" and event["created_at"] == job["finished_at"]
    job = _delivered(api, job_id, attempts=1)
    assert event["data"]["webhook"] == {"status": "pending", "attempts": 0}
    assert {k: v for k, v in event["data"].items() if k != "webhook"} == {k: v for k, v in job.items() if k != "webhook"}
    assert receiver.events_for(job_id) == [received]  # once


def test_cancelling_sends_job_cancelled_and_deleting_sends_nothing_more(hooks_on, redis_client):
    api, (receiver, _) = hooks_on
    store = JobStore(redis_client, ttl_seconds=600)  # a job whose chunks no worker was asked to do: it waits
    job_id = store.create(total=2, chunks=2, kind="bulk", model=MODEL, callback_url=receiver.url + "/in")
    for c in range(2):
        store.add_chunk(job_id, c, [f"{c}.png"], {c: b"raw"}, {})
    before = int(time.time())
    r = requests.delete(f"{api}/api/v1/jobs/{job_id}", timeout=10)
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    (received,) = receiver.wait_for(job_id, 1)
    event = _verify(received, before)
    assert event["type"] == "job.cancelled" and event["data"]["status"] == "cancelled"
    _delivered(api, job_id, attempts=1)
    assert requests.delete(f"{api}/api/v1/jobs/{job_id}", timeout=10).status_code == 204
    assert receiver.events_for(job_id) == [received]


def test_a_failed_delivery_is_retried_with_the_same_event_id(hooks_on, mnist_test):
    api, (receiver, _) = hooks_on
    receiver.reset((500, {}))  # the receiver fails once
    before = int(time.time())
    r = _submit(api, [("file", ("a.png", digit_png(mnist_test[0][0])))], receiver.url + "/")
    job_id = r.json()["id"]
    first, second = receiver.wait_for(job_id, 2)
    assert _verify(first, before)["id"] == _verify(second, before)["id"] == f"evt_{job_id}"
    assert first.body == second.body  # the same event; only the signature's time may differ
    _delivered(api, job_id, attempts=2)


def test_a_redirect_is_not_followed(hooks_on, mnist_test):
    """The receiver answers 307 (repeat the POST) to another allowed receiver: that one gets nothing; the 307
    counts as a failed try."""
    api, (receiver, elsewhere) = hooks_on
    receiver.reset((307, {"Location": elsewhere.url + "/stolen"}))
    r = _submit(api, [("file", ("a.png", digit_png(mnist_test[0][1])))], receiver.url + "/")
    job_id = r.json()["id"]
    first, second = receiver.wait_for(job_id, 2)
    assert first.event["id"] == second.event["id"]
    _delivered(api, job_id, attempts=2)
    assert elsewhere.received == []


def test_refused_callbacks_store_nothing_and_reach_no_one(hooks_on, redis_client, mnist_test, stack):
    api, receivers = hooks_on
    port = receivers[0].port
    files = [("file", ("a.png", digit_png(mnist_test[0][0])))]
    for url in (f"http://127.0.0.2:{port}/", f"http://[::1]:{port}/", f"http://localhost:{port}/",
                f"http://2130706433:{port}/", f"http://127.1:{port}/", f"http://[::ffff:127.0.0.1]:{port}/",
                f"http://127.0.0.1:{stack.port}/api/v1/jobs", f"ftp://127.0.0.1:{port}/", f"gopher://127.0.0.1:{port}/_",
                f"http://127.0.0.1:{port}/" + "a" * 5000):
        r = _submit(api, files, url)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"]["code"] in (urls.INVALID, urls.NOT_ALLOWED), r.text
    assert list(redis_client.scan_iter("df:{*}:job")) == []
    assert all(rec.received == [] for rec in receivers)


def test_the_check_runs_again_when_sending(receivers):
    """A URL allowed at submit but not when sending (the allow-list changed, or DNS now says loopback) is given up
    without connecting; an allowed host name is connected to at its checked address with its own Host header."""
    receiver = receivers[0]
    receiver.reset()
    event = {"id": "evt_x", "type": "job.succeeded", "created_at": "2026-01-01T00:00:00Z", "data": {"id": "x" * 32}}
    refused = post_event(receiver.url + "/", event, WEBHOOK_SECRET, allowed="")
    assert not refused.delivered and refused.final and "loopback" in refused.error
    assert receiver.received == []
    sent = post_event(f"http://localhost:{receiver.port}/by-name", event, WEBHOOK_SECRET,
                      allowed=f"localhost:{receiver.port}")
    assert sent.delivered, sent.error
    (got,) = receiver.received
    assert got.headers["Host"] == f"localhost:{receiver.port}" and got.path == "/by-name"
    tls = post_event(f"https://127.0.0.1:{receiver.port}/", event, WEBHOOK_SECRET, allowed=f"127.0.0.1:{receiver.port}")
    assert not tls.delivered and not tls.final  # a plain HTTP server is no TLS receiver: retried later
    receiver.reset()


def test_a_hand_over_that_failed_is_retried_by_the_reconcile_scan(hooks_on, redis_client, redis_url):
    api, (receiver, _) = hooks_on

    def broker_down(store, job_id):
        raise ConnectionError("the broker is unavailable")

    failing = JobStore(redis_client, ttl_seconds=600, on_end=broker_down)
    job_id = failing.create(total=1, chunks=1, kind="bulk", model=MODEL, callback_url=receiver.url + "/")
    failing.add_chunk(job_id, 0, ["a.png"], {0: b"raw"}, {})
    failing.write_results(job_id, {0: {"digit": 3, "confidence": 0.9}}, {}, done_chunk=0)
    assert failing.status(job_id) == "succeeded" and redis_client.zscore(ACTIVE, job_id) is not None

    broker = Celery("webhook-test", broker=redis_url)
    healthy = JobStore(redis_client, ttl_seconds=600, on_end=partial(enqueue, celery=broker))
    redis_client.zadd(ACTIVE, {job_id: time.time() - 120})
    scan_once(healthy, stale_after=60, queue="df-test-nobody", celery=broker)
    (received,) = receiver.wait_for(job_id, 1)
    assert received.event["type"] == "job.succeeded" and redis_client.zscore(ACTIVE, job_id) is None
    _delivered(api, job_id, attempts=1)
