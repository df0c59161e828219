"""A tiny smoke run of scripts/bench.py (benchmarks are scripts, not timed tests): it runs and reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_smoke(tmp_path):
    out = tmp_path / "benchmarks.md"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)  # the script starts its own redis-server and stack
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--smoke", "--out", str(out),
         "--sections", "engine,frontend,pipeline,bulk,drawings"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out.read_text()
    for heading in ("## Machine", "## Targets", "## 1. Engine", "## 1b. Front end alone", "## 2. In-process pipeline", "## 3. Bulk end to end",
                    "## 4. Single drawings end to end"):
        assert heading in report
    assert "| concurrency | p50 |" in report  # the drawings table was printed and written
    assert "| images/s | runs |" in report
    assert "front end: CPU per 12 MP JPEG" in report  # the front end's cost is measured and judged
    assert "## 3. Bulk end to end" in proc.stdout  # printed as well as written
