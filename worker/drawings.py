"""The drawing worker: a plain long-running process that answers drawings from the stream in batches.

    python -m worker.drawings [--name interactive]

Each process is one consumer of the group (named <name>@<host>.<pid>, so processes and hosts add up on the
same Redis). XREADGROUP COUNT n BLOCK hands it what has accumulated, so concurrent requests share one model
call; the model comes from worker/serving.py (it follows MODEL_DIR/current between batches); one pipeline
stores the finished records and the images counter, publishes the answers and acknowledges the batch.
About once a second it takes over drawings another consumer left unacknowledged for DRAWING_CLAIM_SECONDS
(XAUTOCLAIM): the batch of a SIGKILLed worker is answered by another one, or by itself restarted. It beats
in the heartbeat sets of queue `interactive` once its model is loaded (/readyz, /metrics); SIGTERM or
SIGINT: it finishes the batch in hand and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import threading
import time

import redis

from digitflow.drawings import GROUP, QUEUE, STREAM, Drawing, encode_answers
from digitflow.jobstore import JobStore
from digitflow.metrics_keys import ALIVE_WITHIN, ready_key
from digitflow.settings import Settings, get_settings
from worker import heartbeat, metrics
from worker.pipeline import POISON, run_batch
from worker.serving import for_this_process

log = logging.getLogger("worker.drawings")
BLOCK_MS = 1000  # longest wait for a drawing (also how soon SIGTERM is seen when idle)
CLAIM_EVERY = 1.0  # seconds between looks for drawings a stopped consumer left
TIDY_EVERY = 5.0  # seconds between trims of acknowledged entries
SWEEP_EVERY = 60.0  # seconds between looks for consumers long gone
GONE_AFTER_MS = 3_600_000  # a consumer with nothing pending that has not read for an hour is removed


def next_id(entry_id: str) -> str:
    ms, seq = entry_id.split("-")
    return f"{ms}-{int(seq) + 1}"


class DrawingWorker:
    def __init__(self, settings: Settings, client: redis.Redis, name: str = QUEUE):
        self.settings, self.r = settings, client
        self.store = JobStore(client, settings.result_ttl_seconds)
        self.serving = for_this_process(settings.model_dir, settings.inference_backend, settings.inference_threads,
                                        client)
        self.consumer = f"{name}@{socket.gethostname()}.{os.getpid()}"
        self.stopping = threading.Event()
        self._claimed = self._tidied = self._swept = 0.0

    def start(self) -> None:
        """Load the model, join the group, then say so (heartbeat and ready mark) and serve metrics."""
        self.serving.engine()
        while not self.stopping.is_set():
            try:
                self._join()
                break
            except redis.ConnectionError as exc:
                log.warning("waiting for Redis: %s", exc)
                self.stopping.wait(1.0)
        threading.Thread(target=heartbeat.keep_beating, args=(self.r, self.consumer, [QUEUE], self.stopping, lambda: True),
                         name="heartbeat", daemon=True).start()
        metrics.serve()
        log.info("%s: ready, reading %s as a consumer of group %s", self.consumer, STREAM, GROUP)

    def _join(self) -> None:
        try:  # from the stream's start: drawings sent before any worker existed are answered too
            self.r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                batch = self._next()
                if batch:
                    self.answer(batch)
                else:
                    self.serving.engine()  # idle: still follow a moved model pointer
            except redis.ResponseError as exc:  # NOGROUP, or UNBLOCKED: the stream was deleted under it
                log.warning("%s: %s; joining the group again", self.consumer, exc)
                with contextlib.suppress(redis.RedisError):
                    self._join()
                self.stopping.wait(0.1)
            except redis.RedisError as exc:  # Redis restarting: what is not acknowledged comes back
                log.warning("Redis: %s; retrying", exc)
                self.stopping.wait(0.5)

    def _next(self) -> list[Drawing]:
        now = time.monotonic()
        if now - self._claimed >= CLAIM_EVERY:
            self._claimed = now
            taken = self._take_over()
            if taken:
                return taken
        if now - self._tidied >= TIDY_EVERY:
            self._tidied = now
            try:
                self._tidy(sweep=now - self._swept >= SWEEP_EVERY)
            except redis.ResponseError as exc:  # no stream or group (yet): nothing to trim
                log.debug("not tidied: %s", exc)
        got = self.r.xreadgroup(GROUP, self.consumer, {STREAM: ">"}, count=self.settings.interactive_batch_max,
                                block=BLOCK_MS)
        return [Drawing.parse(entry_id, fields) for _, entries in got or [] for entry_id, fields in entries]

    def _take_over(self) -> list[Drawing]:
        """Drawings another consumer (a stopped process) left unacknowledged, with how often each was handed out."""
        idle = int(self.settings.drawing_claim_seconds * 1000)
        reply = self.r.xautoclaim(STREAM, GROUP, self.consumer, idle, "0-0", count=self.settings.interactive_batch_max)
        taken = [Drawing.parse(entry_id, fields) for entry_id, fields in reply[1] if entry_id is not None]
        if not taken:
            return []
        pending = self.r.xpending_range(STREAM, GROUP, taken[0].entry_id, taken[-1].entry_id, len(taken),
                                        consumername=self.consumer)
        times = {p["message_id"].decode(): p["times_delivered"] for p in pending}
        for d in taken:
            d.deliveries = times.get(d.entry_id, 1)
        log.warning("%s: took over %d drawing(s) left unacknowledged for %.0f s", self.consumer, len(taken),
                    self.settings.drawing_claim_seconds)
        return taken

    def answer(self, batch: list[Drawing]) -> None:
        """Predict a batch and store, answer and acknowledge it in one pipeline (a re-delivery writes the same)."""
        inputs: dict[int, bytes] = {}
        done: list[tuple[Drawing, dict, bytes | None]] = []
        for slot, d in enumerate(batch):
            if not d.job_id or not d.raw:
                continue  # not a drawing: acknowledged below, never retried
            if d.deliveries > self.settings.max_redeliveries + 1:
                done.append((d, POISON, None))
            else:
                inputs[slot] = d.raw
        if inputs:
            out = run_batch(self.serving.engine(), inputs, self.settings.max_image_pixels, self.settings.batch_size)
            done += [(batch[slot], out.results[slot], out.digits.get(slot)) for slot in inputs]
        answers: dict[str, list] = {}
        for d, result, image in done:
            if d.reply:
                answers.setdefault(d.reply, []).append((d.job_id, result, image))
        pipe = self.r.pipeline(transaction=False)
        self.store.finish_drawings(pipe, done)
        for channel, items in answers.items():  # one message per web process and batch
            pipe.publish(channel, encode_answers(items))
        pipe.xack(STREAM, GROUP, *(d.entry_id for d in batch))
        pipe.execute()

    def _tidy(self, sweep: bool) -> None:
        """Trim the entries every consumer has acknowledged (below the oldest pending one and the last one
        handed out); remove consumers long gone with nothing pending."""
        group = next((g for g in self.r.xinfo_groups(STREAM) if _text(g["name"]) == GROUP), None)
        if group is None:
            return
        bound = next_id(_text(group["last-delivered-id"]))
        if group["pending"]:
            oldest = self.r.xpending(STREAM, GROUP)["min"]
            if oldest:
                bound = min(bound, _text(oldest), key=lambda i: tuple(int(p) for p in i.split("-")))
        self.r.xtrim(STREAM, minid=bound, approximate=True)
        if sweep:
            self._swept = time.monotonic()
            for c in self.r.xinfo_consumers(STREAM, GROUP):
                if c["pending"] == 0 and c["idle"] > GONE_AFTER_MS and _text(c["name"]) != self.consumer:
                    self.r.xgroup_delconsumer(STREAM, GROUP, _text(c["name"]))

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):
            heartbeat.forget(self.r, self.consumer, [QUEUE])
        metrics.clean_up()


def healthy(settings: Settings, name: str = QUEUE) -> bool:
    """A worker named `name` on this host beats in the ready set (its model is loaded), fresh."""
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    prefix = f"{name}@{socket.gethostname()}."
    fresh = client.zrangebyscore(ready_key(QUEUE), time.time() - ALIVE_WITHIN, "+inf")
    return any(_text(node).startswith(prefix) for node in fresh)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m worker.drawings", description=__doc__.splitlines()[0])
    ap.add_argument("--name", default=QUEUE, help="the first part of this consumer's name (default: %(default)s)")
    ap.add_argument("--check", action="store_true",
                    help="exit 0 if a drawing worker on this host has its model loaded (a container's healthcheck)")
    args = ap.parse_args(argv)
    if args.check:
        return 0 if healthy(get_settings(), args.name) else 1
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s: %(levelname)s/%(name)s] %(message)s")
    metrics.prepare()  # before anything imports prometheus_client
    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=BLOCK_MS / 1000 + 30, socket_connect_timeout=2,
                                  health_check_interval=10)
    worker = DrawingWorker(settings, client, args.name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stopping.set())  # the batch in hand is finished first
    try:
        worker.start()
        worker.run()
    finally:
        worker.close()
        log.info("%s: stopped", worker.consumer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
