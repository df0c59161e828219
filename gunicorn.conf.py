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
# The longest request line gunicorn reads (its maximum); the app refuses URLs over MAX_URL_BYTES (4 KB)
# itself, with a JSON 414, so only lines past this limit get gunicorn's own HTML answer.
limit_request_line = 8190
accesslog = os.environ.get("ACCESS_LOG") or None
# Every process must sign the UI's session cookie with the same key.
os.environ.setdefault("SECRET_KEY", secrets.token_hex(32))

# Metrics (web/metrics.py): prometheus_client's multiprocess mode. Every process writes its samples to
# PROMETHEUS_MULTIPROC_DIR and a scrape sums them; the folder must be fresh per start: a temporary one
# made here unless one is given (scripts/stack.py gives one per start), emptied before the first fork.
# Set before any process imports prometheus_client (the mode is chosen at import); children inherit it.
_made_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile as _tempfile

    _made_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = _tempfile.mkdtemp(prefix="digitflow-web-metrics-")


def on_starting(server):
    import glob

    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # its live gauges go; its counts stay in the sums


def on_exit(server):
    if _made_metrics_dir:
        import shutil

        shutil.rmtree(_made_metrics_dir, ignore_errors=True)
