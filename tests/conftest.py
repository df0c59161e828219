"""Shared fixtures: a real redis-server, real Celery workers and a real gunicorn web server."""

from __future__ import annotations

import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from stack import RedisServer, Stack, free_port  # noqa: E402

from digitflow.imaging import to_png  # noqa: E402
from model_training.data import load_test_split  # noqa: E402
from tests.receiver import Receiver  # noqa: E402

FIXTURE_MNIST = ROOT / "tests" / "fixtures" / "mnist"


def mnist_dir() -> Path:
    """MNIST_DIR when it holds the test split, else the carried 10k test files."""
    given = os.environ.get("MNIST_DIR")
    if given and any(Path(given).glob("t10k-images*")):
        return Path(given)
    return FIXTURE_MNIST


@pytest.fixture(scope="session")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    return load_test_split(mnist_dir())


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """REDIS_URL if given, else a private redis-server on a free port for the whole session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_client(redis_url) -> redis.Redis:
    """A client on a clean job store (job and rate-limit keys removed before each test)."""
    client = redis.Redis.from_url(redis_url)
    for pattern in ("df:*", "*df-limit*"):
        keys = list(client.scan_iter(pattern, count=1000))
        if keys:
            client.delete(*keys)
    return client


WEBHOOK_SECRET = "test-webhook-secret"


@pytest.fixture(scope="session")
def receivers() -> tuple[Receiver, Receiver]:
    """Two webhook receivers (HTTP servers on 127.0.0.1 in threads), named in the stack's WEBHOOK_ALLOWED_HOSTS."""
    pair = (Receiver().start(), Receiver().start())
    yield pair
    for r in pair:
        r.stop()


@pytest.fixture(scope="session")
def stack(redis_url, receivers, tmp_path_factory) -> Stack:
    """Real processes: a bulk worker (2 processes), an interactive worker, gunicorn; each worker serves its
    metrics on a port of its own (stack.metrics_ports)."""
    logs = tmp_path_factory.mktemp("logs")
    ports = {"bulk": free_port(), "interactive": free_port()}
    hooks = {"WEBHOOK_SECRET": WEBHOOK_SECRET,
             "WEBHOOK_ALLOWED_HOSTS": ",".join(f"127.0.0.1:{r.port}" for r in receivers)}
    s = Stack({"REDIS_URL": redis_url, "RATE_LIMIT": "off", **hooks}, logs, metrics_ports=ports).start_all()
    yield s
    s.stop_all()


@pytest.fixture
def api(stack, redis_client) -> str:
    """Base URL of the running service, with a clean job store."""
    return stack.url


def digit_png(x: np.ndarray) -> bytes:
    return to_png(x)


def make_zip(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def wait_job(base: str, job_id: str, timeout: float = 120, headers: dict | None = None) -> dict:
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        job = requests.get(f"{base}/api/v1/jobs/{job_id}", headers=headers, timeout=10).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s: {job}")


def all_results(base: str, job_id: str, headers: dict | None = None) -> list[dict]:
    items, url = [], f"{base}/api/v1/jobs/{job_id}/results?limit=1000"
    while url:
        page = requests.get(url if url.startswith("http") else base + url, headers=headers, timeout=10).json()
        items += page["items"]
        url = page["next"]
    return items


def write_mnist_dir(folder: Path, x: np.ndarray, y: np.ndarray, train: int | None, test_from: int = 9000) -> Path:
    """An MNIST folder of IDX files made from the carried test split: the first `train` images as the
    training split (None: no training files) and images from `test_from` on as the test split."""
    from model_training.data import write_idx

    folder.mkdir(parents=True)
    parts = [("t10k-images-idx3-ubyte.gz", x[test_from:]), ("t10k-labels-idx1-ubyte.gz", y[test_from:])]
    if train is not None:
        parts += [("train-images-idx3-ubyte.gz", x[:train]), ("train-labels-idx1-ubyte.gz", y[:train])]
    for name, arr in parts:
        write_idx(folder / name, arr)
    return folder
