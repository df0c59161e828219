"""What one drawing costs: Redis commands (INFO commandstats deltas) and CPU per process, per prediction.

Starts a private redis-server and the stack of scripts/stack.py, warms up, then sends N drawings (the draw
page's body: a JSON data URL of a 280x280 PNG, a test digit dark on white) from C threads with keep-alive
connections. Prints, per concurrency level: Redis commands per drawing (all clients together, with the
commands that make them up), CPU ms per drawing of each process (web: gunicorn's master and workers), and
the statuses. Not a benchmark of latency (scripts/bench.py is): counts and CPU, which a busy machine
changes little.

    .venv/bin/python scripts/drawing_cost.py [--n 400] [--concurrency 1,8]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchkit.http import http_load  # noqa: E402  (the bench's load generator: one keep-alive connection per thread)
from stack import RedisServer, Stack  # noqa: E402


def drawing_bodies(n: int) -> tuple[list[bytes], list[int]]:
    """n test digits as the draw page sends them (280x280 PNG, dark ink on white, as a data URL)."""
    from PIL import Image

    from model_training.data import load_test_split
    from tests.conftest import mnist_dir

    x, y = load_test_split(mnist_dir())
    bodies = []
    for digit in x[:n]:
        big = Image.fromarray(255 - digit).resize((200, 200), Image.Resampling.BILINEAR)
        canvas = Image.new("L", (280, 280), 255)
        canvas.paste(big, (40, 40))
        buf = io.BytesIO()
        canvas.save(buf, format="PNG")
        bodies.append(json.dumps({"image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}).encode())
    return bodies, [int(v) for v in y[:n]]


def cpu(stack: Stack, server: RedisServer) -> dict[str, float]:
    out = {}
    procs = {name: p.pid for name, p in stack.procs.items()} | {"redis": server.proc.pid}
    for name, pid in procs.items():
        total = 0.0
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += sum(p.cpu_times()[:2])
        out[name] = total
    return out


def commands(client: redis.Redis) -> Counter:
    stats = client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="drawings per concurrency level")
    ap.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    args = ap.parse_args(argv)
    bodies, labels = drawing_bodies(200)
    tmp = Path(tempfile.mkdtemp(prefix="digitflow-drawing-cost-"))
    server = RedisServer(tmp / "redis").start()
    stack = Stack({"REDIS_URL": server.url, "RATE_LIMIT": "off"}, tmp / "logs")
    client = redis.Redis.from_url(server.url)
    try:
        stack.start_all()
        http_load(stack.url, "/api/v1/predict", bodies, 100, 4)  # warm-up: every web process and thread, the worker's model
        time.sleep(1.0)
        print(f"stack: {', '.join(stack.procs)}; logs in {stack.log_dir}")
        for c in (int(v) for v in args.concurrency.split(",")):
            cmd0, cpu0 = commands(client), cpu(stack, server)
            run = http_load(stack.url, "/api/v1/predict", bodies, args.n, c, labels)
            answered = run["statuses"].get("200", 0)
            wrong = round(answered * (1 - (run["accuracy"] or 0))) if answered else 0
            cmd1, cpu1 = commands(client), cpu(stack, server)
            used = cmd1 - cmd0
            used["info"] -= 1  # this script's own INFO commandstats
            used = +used
            per = {k: v / args.n for k, v in used.most_common()}
            print(f"\nconcurrency {c}: {args.n} drawings in {run['wall_s']:.1f} s, statuses {run['statuses']}, "
                  f"wrong digits {wrong}")
            print(f"  Redis commands per drawing: {sum(used.values()) / args.n:.2f}  ("
                  + ", ".join(f"{k} {v:.2f}" for k, v in per.items()) + ")")
            print("  CPU ms per drawing: " + ", ".join(f"{name} {(cpu1[name] - cpu0[name]) * 1e3 / args.n:.2f}"
                                                      for name in cpu1))
    finally:
        stack.stop_all()
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
