"""Issue 15's rollout check: export a run into the MODEL_DIR of a running service while drawings keep
arriving, and count what the drawers saw.

    python scripts/swap_check.py RUN [--data-dir ../shared/data/mnist] [--concurrency 4] [--after 20]

Starts a private stack (its own redis-server, workers, gunicorn) on a copy of the shipped model folder,
sends drawings (MNIST test digits as the draw page's JSON) from `--concurrency` threads, runs
`python -m model_training export RUN --model-dir LIVE` meanwhile, keeps drawing `--after` seconds past
the export, and prints: requests, failures, the versions the answers named, and how long after the
pointer moved the first answer of the new version came.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from stack import RedisServer, Stack  # noqa: E402

from digitflow.imaging import to_png  # noqa: E402
from model_training.data import load_test_split  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder to export (e.g. a finetune run)")
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DIR") or str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--after", type=float, default=20.0, help="seconds of drawing after the export returns")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="swap-check-"))
    live = tmp / "live"
    shutil.copytree(ROOT / "models", live)
    x, y = load_test_split(args.data_dir)
    bodies = [json.dumps({"image": "data:image/png;base64," + base64.b64encode(to_png(x[i])).decode()})
              for i in range(500)]
    redis_server = RedisServer(tmp / "redis").start()
    stack = Stack({"REDIS_URL": redis_server.url, "RATE_LIMIT": "off", "MODEL_DIR": str(live)}, tmp / "logs")
    answers: list[tuple[float, int, str | None, bool]] = []  # (time, status, model_version, right)
    lock, stop = threading.Lock(), threading.Event()
    try:
        stack.start_all()
        stack.wait_ready(workers=2)

        def draw(k: int) -> None:
            s, i = requests.Session(), k
            while not stop.is_set():
                try:
                    r = s.post(f"{stack.url}/api/v1/predict", data=bodies[i % 500], timeout=30,
                               headers={"Content-Type": "application/json"})
                    body = r.json() if r.status_code == 200 else {}
                    row = (time.time(), r.status_code, body.get("model_version"), body.get("digit") == int(y[i % 500]))
                except requests.RequestException:
                    row = (time.time(), 0, None, False)
                with lock:
                    answers.append(row)
                i += args.concurrency

        threads = [threading.Thread(target=draw, args=(k,), daemon=True) for k in range(args.concurrency)]
        for t in threads:
            t.start()
        time.sleep(5)
        t_export = time.time()
        export = subprocess.run([sys.executable, "-m", "model_training", "export", args.run, "--model-dir", str(live),
                                 "--data-dir", args.data_dir], cwd=ROOT, capture_output=True, text=True)
        t_done = time.time()
        if export.returncode != 0:
            print(export.stdout[-2000:], export.stderr[-2000:])
            return 1
        switched = (live / "current").lstat().st_mtime
        time.sleep(args.after)
        stop.set()
        for t in threads:
            t.join(timeout=35)
    finally:
        stack.stop_all()
        redis_server.stop()
    new = json.loads((live / "current" / "model_card.json").read_text())["version"]
    versions = Counter(v for _, status, v, _ in answers if status == 200)
    failed = sum(1 for _, status, _, _ in answers if status != 200)
    first_new = min((t for t, status, v, _ in answers if status == 200 and v == new), default=None)
    old_after = sum(1 for t, status, v, _ in answers if status == 200 and v != new and first_new and t > first_new + 2)
    right = sum(1 for *_, ok in answers if ok)
    print(f"| drawings | failed | right | versions named (answers) | export wall | pointer -> first new answer "
          f"| old answers > 2 s after the first new |\n| --- | --- | --- | --- | --- | --- | --- |\n"
          f"| {len(answers)} | {failed} | {right} | {', '.join(f'{v}: {n}' for v, n in versions.items())} "
          f"| {t_done - t_export:.0f} s | {f'{first_new - switched:.1f} s' if first_new else 'never'} | {old_after} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if failed == 0 and first_new else 1


if __name__ == "__main__":
    raise SystemExit(main())
