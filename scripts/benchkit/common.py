"""Shared by the sections: logging and number formats, the machine, the data, spawned children."""

from __future__ import annotations

import base64
import io
import json
import multiprocessing as mp
import os
import platform
import subprocess
import time
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from stack import redis_server_binary

from digitflow.imaging import to_png

ROOT = Path(__file__).resolve().parents[2]
SPAWN = mp.get_context("spawn")  # never fork a process that may have TensorFlow or threads loaded


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def md_table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def f0(x) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:,.0f}"


def f1(x) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:,.1f}"


def f2(x) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:,.2f}"


def mb(nbytes: float | None) -> str:
    return "–" if nbytes is None else f"{nbytes / 2**20:,.0f} MB"


def pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        redis_v = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True, timeout=5).stdout
        redis_v = redis_v.split("v=")[1].split()[0] if "v=" in redis_v else redis_v.strip()
    except Exception:
        redis_v = "unknown"
    pkgs = ["onnxruntime", "tensorflow-cpu", "keras", "numpy", "pillow", "celery", "redis",
            "flask", "gunicorn", "litserve", "psutil"]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_bytes": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis_server": redis_v,
        "packages": {p: pkg_version(p) for p in pkgs},
        "loadavg_start": os.getloadavg(),
    }


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def mnist_dir() -> Path:
    given = os.environ.get("MNIST_DIR")
    if given and any(Path(given).glob("t10k-images*")):
        return Path(given)
    return ROOT / "tests" / "fixtures" / "mnist"


def load_mnist(n: int) -> tuple[np.ndarray, np.ndarray]:
    from model_training.data import load_test_split

    x, y = load_test_split(mnist_dir())
    return x[:n], y[:n].astype(int)


def write_zip(path: Path, pngs: list[bytes], names: list[str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, data in enumerate(pngs):
            zf.writestr(names[i] if names else f"{i:06d}.png", data)
    return path


def shifted_pngs(x: np.ndarray, n: int, seed: int = 7) -> list[bytes]:
    """n MNIST digits (cycling through x) each shifted by up to 2 pixels in each direction."""
    rng = np.random.default_rng(seed)
    shifts = rng.integers(-2, 3, size=(n, 2))
    return [to_png(np.roll(x[i % len(x)], tuple(shifts[i]), axis=(0, 1))) for i in range(n)]


def drawing_body(digit: np.ndarray) -> bytes:
    """A 28x28 MNIST digit as the draw page sends it: a 280x280 PNG, dark ink on white, as a data URL."""
    from PIL import Image

    big = Image.fromarray(255 - digit).resize((200, 200), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (280, 280), 255)
    canvas.paste(big, (40, 40))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return json.dumps({"image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}).encode()


def in_child(fn, *args):
    """Run fn(*args) in a fresh spawned process and return its result."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=SPAWN) as ex:
        return ex.submit(fn, *args).result()
