"""The lean path for drawings with real processes: a drawing worker SIGKILLed with drawings in its hands
(another worker, or the restarted one, answers them), a SIGTERM that lets the batch finish, the job record
of a drawing, and the Redis commands a drawing costs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis
import requests
from stack import RedisServer, Stack

from digitflow.drawings import GROUP, STREAM
from tests.conftest import digit_png

pytestmark = pytest.mark.slow


@pytest.fixture
def private(tmp_path):
    """A stack of its own (own Redis) whose drawing workers a test may kill."""
    server = RedisServer(tmp_path / "redis").start()
    stack = Stack({"REDIS_URL": server.url, "RATE_LIMIT": "off"}, tmp_path / "logs")
    yield stack, redis.Redis.from_url(server.url)
    stack.stop_all()
    server.stop()


class Drawings:
    """Drawings sent without pause from several threads (wait=30); every answer kept with its image."""

    def __init__(self, url: str, pngs: list[bytes], threads: int = 12):
        self.url, self.pngs = url, pngs
        self.stop = threading.Event()
        self.answers: list[tuple[int, int, int | None]] = []  # (image, status, digit)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def run(self, offset: int) -> None:
        session, i = requests.Session(), offset
        while not self.stop.is_set():
            k = i % len(self.pngs)
            i += len(self.threads)
            try:
                r = session.post(f"{self.url}/api/v1/predict?wait=30", files={"image": ("d.png", self.pngs[k])},
                                 timeout=60)
                answer = (k, r.status_code, r.json().get("digit") if r.status_code == 200 else None)
            except requests.RequestException:
                answer = (k, -1, None)
            with self.lock:
                self.answers.append(answer)

    def __enter__(self) -> Drawings:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=90)

    def count(self) -> int:
        with self.lock:
            return len(self.answers)


def consumer(stack: Stack, name: str) -> str:
    """The consumer name of a drawing worker the stack started (worker/drawings.py: name@host.pid)."""
    import socket

    return f"{name}@{socket.gethostname()}.{stack.procs[name].pid}"


def pending_of(r: redis.Redis, who: str) -> int:
    return len(r.xpending_range(STREAM, GROUP, "-", "+", 1000, consumername=who))


def stop_holding_drawings(stack: Stack, r: redis.Redis, name: str, tries: int = 2000) -> int:
    """SIGSTOP the worker at a moment it holds unacknowledged drawings (a frozen process cannot ack them);
    returns how many it holds."""
    pid, who = stack.procs[name].pid, consumer(stack, name)
    for _ in range(tries):
        os.kill(pid, signal.SIGSTOP)
        held = pending_of(r, who)
        if held:
            return held
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.003)
    raise AssertionError(f"{name} never held a drawing in {tries} looks")


def wait_answers(traffic: Drawings, more: int, timeout: float = 60) -> None:
    target, deadline = traffic.count() + more, time.time() + timeout
    while traffic.count() < target:
        assert time.time() < deadline, f"only {traffic.count()} answers, waited for {target}"
        time.sleep(0.05)


def expected(url: str, pngs: list[bytes]) -> list[int]:
    """What the service answers for each image while nothing goes wrong (the model's own answers)."""
    session = requests.Session()
    return [session.post(f"{url}/api/v1/predict?wait=30", files={"image": ("d.png", png)}, timeout=60).json()["digit"]
            for png in pngs]


def check_every_answer(traffic: Drawings, right: list[int]) -> None:
    answers = traffic.answers
    assert len(answers) > 100
    statuses = {status for _, status, _ in answers}
    assert statuses == {200}, [a for a in answers if a[1] != 200][:5]  # no 5xx, no 202, no dropped connection
    wrong = [(k, digit, right[k]) for k, _, digit in answers if digit != right[k]]
    assert not wrong, wrong[:10]  # each request got its own image's answer


@pytest.fixture(scope="module")
def digits(mnist_test) -> list[bytes]:
    x, _ = mnist_test
    return [digit_png(x[i]) for i in range(60)]


def test_drawings_held_by_a_sigkilled_worker_are_answered_by_another(private, digits):
    stack, r = private
    stack.start_all(workers=("interactive", "interactive2"))
    stack.wait_ready(workers=2)
    victim, right = consumer(stack, "interactive"), expected(stack.url, digits)
    with Drawings(stack.url, digits) as traffic:
        wait_answers(traffic, 50)
        held = stop_holding_drawings(stack, r, "interactive")
        stack.kill("interactive")  # SIGKILL: the drawings it held are neither answered nor acknowledged
        assert pending_of(r, victim) == held  # still its own, unacknowledged: in flight when it died
        t_killed = time.time()
        while pending_of(r, victim):  # the other worker takes them over after DRAWING_CLAIM_SECONDS
            assert time.time() - t_killed < 20, "the dead worker's drawings were not taken over"
            time.sleep(0.1)
        wait_answers(traffic, 50)
    check_every_answer(traffic, right)
    assert "took over" in (stack.log_dir / "interactive2.log").read_text()
    print(f"{held} drawing(s) held by the killed worker, taken over {time.time() - t_killed:.1f} s later; "
          f"{len(traffic.answers)} answers, all 200")


def test_drawings_held_by_a_sigkilled_worker_are_answered_once_it_is_restarted(private, digits):
    stack, r = private
    stack.start_all(workers=("interactive",))
    right = expected(stack.url, digits)
    with Drawings(stack.url, digits, threads=8) as traffic:
        wait_answers(traffic, 50)
        held = stop_holding_drawings(stack, r, "interactive")
        stack.kill("interactive")
        time.sleep(1.0)  # the requests wait: nobody answers now
        stack.start("interactive")  # as scripts/stack.py restarts a worker that died
        wait_answers(traffic, 100)
    check_every_answer(traffic, right)
    assert held >= 1
    deadline = time.time() + 10  # the log line may land just after the answers it led to
    while "took over" not in (stack.log_dir / "interactive.log").read_text():
        assert time.time() < deadline, "the restarted worker did not say it took the drawings over"
        time.sleep(0.1)
    assert r.xpending(STREAM, GROUP)["pending"] == 0  # everything answered was acknowledged


def test_sigterm_finishes_the_batch_then_exits(private, digits):
    stack, r = private
    stack.start_all(workers=("interactive", "interactive2"))
    stack.wait_ready(workers=2)
    who, right = consumer(stack, "interactive"), expected(stack.url, digits)
    with Drawings(stack.url, digits) as traffic:
        wait_answers(traffic, 50)
        stop_holding_drawings(stack, r, "interactive")
        os.killpg(stack.procs["interactive"].pid, signal.SIGTERM)  # arrives while it holds a batch ...
        os.kill(stack.procs["interactive"].pid, signal.SIGCONT)
        assert stack.procs["interactive"].wait(30) == 0  # ... which it answers and acknowledges, then exits
        assert pending_of(r, who) == 0
        wait_answers(traffic, 50)
    check_every_answer(traffic, right)
    assert "took over" not in (stack.log_dir / "interactive2.log").read_text()
    # compose's healthcheck: a worker of that name on this host with its model loaded (it left the ready set)
    check = [sys.executable, "-m", "worker.drawings", "--check", "--name"]
    env = {**os.environ, "REDIS_URL": stack.env["REDIS_URL"]}
    assert subprocess.run([*check, "interactive2"], env=env, timeout=60).returncode == 0
    assert subprocess.run([*check, "interactive"], env=env, timeout=60).returncode == 1


def test_a_drawing_has_a_job_record_and_costs_few_redis_commands(private, digits):
    stack, r = private
    stack.start_all(workers=("interactive",))  # no Celery worker: only the drawing path talks to Redis
    session = requests.Session()
    for png in digits[:20]:  # warm: every connection made
        assert session.post(f"{stack.url}/api/v1/predict", files={"image": ("d.png", png)}, timeout=30).ok
    before = {k: v["calls"] for k, v in r.info("commandstats").items()}
    n = 30
    for png in digits[20 : 20 + n]:  # one at a time: no two drawings share a batch
        assert session.post(f"{stack.url}/api/v1/predict", files={"image": ("d.png", png)}, timeout=30).ok
    after = {k: v["calls"] for k, v in r.info("commandstats").items()}
    per = {k.removeprefix("cmdstat_"): (v - before.get(k, 0)) / n for k, v in after.items() if v != before.get(k, 0)}
    # the web's XADD; the worker's pipeline: HSET + EXPIREAT of the record, PUBLISH, XACK, HINCRBY; and the
    # XREADGROUP that handed it out (plus its idle returns, with heartbeats and the periodic look for
    # drawings to take over: the background, which depends on time, not on drawings)
    assert {k: per.get(k) for k in ("xadd", "hset", "expireat", "publish", "xack", "hincrby")} == dict.fromkeys(
        ("xadd", "hset", "expireat", "publish", "xack", "hincrby"), 1.0), per
    assert per["xreadgroup"] >= 1.0
    answer = session.post(f"{stack.url}/api/v1/predict", files={"image": ("seven.png", digits[0])}, timeout=30).json()
    job = session.get(f"{stack.url}/api/v1/jobs/{answer['job_id']}", timeout=10).json()
    assert (job["status"], job["total"], job["done"], job["failed"]) == ("succeeded", 1, 1, 0)
    assert job["model"] == answer["model"] and job["finished_at"] >= job["created_at"]
    items = session.get(f"{stack.url}/api/v1/jobs/{answer['job_id']}/results", timeout=10).json()["items"]
    assert [(i["filename"], i["digit"]) for i in items] == [("seven.png", answer["digit"])]
    png = session.get(f"{stack.url}/api/v1/jobs/{answer['job_id']}/results/0.png", timeout=10)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    print(f"Redis commands per drawing at concurrency 1: {sum(per.values()):.2f}", per)


def test_drawings_sent_before_any_worker_are_answered_and_a_cancelled_one_is_not(private, digits):
    stack, r = private
    stack.start("web")
    deadline = time.time() + 60
    while True:
        try:
            if requests.get(f"{stack.url}/healthz", timeout=2).ok:
                break
        except requests.RequestException:
            pass
        assert time.time() < deadline, "the web did not start"
        time.sleep(0.2)
    assert requests.get(f"{stack.url}/readyz", timeout=10).status_code == 503  # no drawing worker yet
    sent = [requests.post(f"{stack.url}/api/v1/predict?wait=0", files={"image": (f"{i}.png", digits[i])}, timeout=30)
            for i in range(3)]
    assert [s.status_code for s in sent] == [202] * 3
    ids = [s.json()["job_id"] for s in sent]
    job = requests.get(f"{stack.url}/api/v1/jobs/{ids[0]}", timeout=10).json()
    assert (job["status"], job["total"], job["done"]) == ("queued", 1, 0)
    cancelled = requests.delete(f"{stack.url}/api/v1/jobs/{ids[0]}", timeout=10)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    stack.start("interactive")
    stack.wait_ready()
    for job_id in ids[1:]:  # sent before the group existed: answered once a worker joined
        deadline = time.time() + 30
        while (job := requests.get(f"{stack.url}/api/v1/jobs/{job_id}", timeout=10).json())["status"] == "queued":
            assert time.time() < deadline, job
            time.sleep(0.1)
        assert (job["status"], job["done"]) == ("succeeded", 1)
    after = requests.post(f"{stack.url}/api/v1/predict", files={"image": ("x.png", digits[5])}, timeout=30)
    assert after.status_code == 200
    job = requests.get(f"{stack.url}/api/v1/jobs/{ids[0]}", timeout=10).json()
    assert (job["status"], job["done"]) == ("cancelled", 0)  # its entry left the stream: nobody answered it
    assert r.xpending(STREAM, GROUP)["pending"] == 0
