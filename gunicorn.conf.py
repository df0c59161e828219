"""gunicorn settings: bind PORT (default 5000); threads, since a request may wait for its result."""

import os
import secrets

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
# One process per core: the GIL holds one process to one core (drawings at concurrency 32 measured
# 207/s with one process, 294/s with two; docs/benchmarks.md).
workers = int(os.environ.get("WEB_PROCESSES") or len(os.sched_getaffinity(0)))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "32"))
timeout = 120  # large ZIP uploads are read and stored within one request
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG") or None
# Every process must sign the UI's session cookie with the same key.
os.environ.setdefault("SECRET_KEY", secrets.token_hex(32))
