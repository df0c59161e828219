"""A webhook receiver for tests: an HTTP server on 127.0.0.1 in a thread that records every request and
answers from a script (status and headers in order, then 200)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    def __init__(self):
        self.received: list[Received] = []
        self.answers: list[tuple[int, dict[str, str]]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.received.append(Received(self.command, self.path, dict(self.headers), body))
                    status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                    receiver._cond.notify_all()
                self.send_response(status)
                for k, v in {"Content-Length": "0", **headers}.items():
                    self.send_header(k, v)
                self.end_headers()

            do_POST = do_GET = do_PUT = _record

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self, *answers: tuple[int, dict[str, str]]) -> None:
        """Forget what was received; answer the next requests with `answers`, then 200."""
        with self._cond:
            self.received.clear()
            self.answers[:] = list(answers)

    def events_for(self, job_id: str) -> list[Received]:
        with self._cond:
            return [r for r in self.received if _job_of(r) == job_id]

    def wait_for(self, job_id: str, count: int, timeout: float = 60) -> list[Received]:
        """The first `count` requests about this job, waiting for them up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.received if _job_of(r) == job_id]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(got)} of {count} requests for job {job_id} in {timeout}s: "
                                         f"{self.received}")
                self._cond.wait(left)


def _job_of(r: Received) -> str | None:
    try:
        return r.event["data"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
