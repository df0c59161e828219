"""The service under test: the stack this benchmark starts, or a running one; process helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from stack import RedisServer, Stack

from benchkit.http import http_json


class Service:
    """The stack this script starts (Stack + its own redis-server), or a running one given by URL."""

    def __init__(self, url: str | None, redis_url: str | None, log_dir: Path, env: dict | None = None):
        self.log_dir = log_dir
        self.redis_server: RedisServer | None = None
        self.stack: Stack | None = None
        if url:
            self.url = url.rstrip("/")
            self.redis_url = redis_url
        else:
            self.redis_server = RedisServer(log_dir / "redis").start()
            self.redis_url = self.redis_server.url
            env = {"RATE_LIMIT": "off"} if env is None else env  # one load generator: no per-client limit
            self.stack = Stack({"REDIS_URL": self.redis_url, **env}, log_dir / "logs", bulk_processes=2)
            self.stack.start_all()
            self.url = self.stack.url
        import redis

        self.redis = redis.Redis.from_url(self.redis_url) if self.redis_url else None

    @property
    def owned(self) -> bool:
        return self.stack is not None

    def processes(self) -> dict[str, list]:
        """name -> psutil processes (a worker's main process and its pool children; gunicorn's too)."""
        import psutil

        out: dict[str, list] = {}
        if self.stack:
            for name, proc in self.stack.procs.items():
                if proc.poll() is None:
                    try:
                        p = psutil.Process(proc.pid)
                        out[name] = [p, *p.children(recursive=True)]
                    except psutil.NoSuchProcess:
                        pass
            if self.redis_server and self.redis_server.proc:
                out["redis"] = [psutil.Process(self.redis_server.proc.pid)]
            return out
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "gunicorn" in cmd and "web:create_app" in cmd:
                out.setdefault("web", []).append(p)
            elif "celery" in cmd and "-Q bulk" in cmd:
                out.setdefault("bulk", []).append(p)
            elif "worker.drawings" in cmd:  # the drawing worker (worker/drawings.py)
                out.setdefault("interactive", []).append(p)
            elif "redis-server" in cmd:
                out.setdefault("redis", []).append(p)
        return out

    def cpu(self) -> dict[str, float]:
        import psutil

        out = {}
        for name, procs in self.processes().items():
            total = 0.0
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += sum(p.cpu_times()[:2])
            out[name] = total
        return out

    def rss(self) -> dict[str, list[tuple[int, str, int]]]:
        import psutil

        out = {}
        for name, procs in self.processes().items():
            rows = []
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    rows.append((p.pid, "main" if p is procs[0] else "child", p.memory_info().rss))
            out[name] = rows
        return out

    def wait_worker(self, prefix: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, body = http_json("GET", self.url + "/readyz", timeout=5)
            if status == 200 and any(w.startswith(prefix + "@") for w in body.get("workers", [])):
                return
            time.sleep(0.3)
        raise RuntimeError(f"worker {prefix} did not answer within {timeout} s")

    def restart_bulk(self, processes: int, threads: int | None = None) -> None:
        assert self.stack
        self.stack.stop("bulk")
        self.stack.bulk_processes = processes
        if threads:
            self.stack.env["INFERENCE_THREADS"] = str(threads)
        else:
            self.stack.env.pop("INFERENCE_THREADS", None)
        self.stack.start("bulk")
        self.wait_worker("bulk")
        time.sleep(1.0)  # pool children forked and idle

    def redis_info(self) -> dict:
        info = self.redis.info("all") if self.redis else {}
        calls = sum(v["calls"] for k, v in info.items() if k.startswith("cmdstat_") and isinstance(v, dict))
        return {"used_memory": info.get("used_memory"), "calls": calls,
                "net_in": info.get("total_net_input_bytes"), "net_out": info.get("total_net_output_bytes")}

    def close(self) -> None:
        if self.stack:
            self.stack.stop_all()
        if self.redis_server:
            self.redis_server.stop()


def cpu_delta(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, float]:
    return {k: (after.get(k, 0.0) - before.get(k, 0.0)) / wall for k in after}


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM a process group started with start_new_session, SIGKILL if it lingers."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
