"""Rollout without restarts: versions under MODEL_DIR, an atomic pointer, workers that follow it under load,
a broken model refused while the old one serves, rollback (real Redis, workers, HTTP)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from digitflow.contract import (
    CARD_FILE,
    CURRENT,
    ONNX_FILE,
    VERSIONS_DIR,
    check_model_folder,
    model_version,
    resolve_model_dir,
    sha256_file,
)
from scripts.stack import RedisServer, Stack
from tests.conftest import all_results, digit_png, make_zip, wait_job

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models"


def _variant(dst: Path, temperature: float) -> str:
    """A second real model: the shipped weights with another temperature folded in (another ONNX file)."""
    code = f"""
import json, shutil, sys
from pathlib import Path
import keras
from digitflow.contract import model_version, sha256_file
from model_training.calibration import fold_into
from model_training.export import to_onnx
dst, src = Path({str(dst)!r}), Path({str(SHIPPED)!r})
dst.mkdir(parents=True)
model = keras.models.load_model(src / "model.keras")
fold_into(model, {temperature})
model.save(dst / "model.keras")
to_onnx(model, dst / "model.onnx")
card = json.loads((src / "model_card.json").read_text())
card["files"] = {{n: sha256_file(dst / n) for n in ("model.onnx", "model.keras")}}
card["version"] = model_version(dst / "model.onnx")
(dst / "model_card.json").write_text(json.dumps(card))
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=300)
    return json.loads((dst / CARD_FILE).read_text())["version"]


@pytest.fixture(scope="module")
def variant(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("variant") / "model"
    _variant(folder, 1.5)
    return folder


def _publish(live: Path, folder: Path) -> str:
    from model_training.export import publish

    staged = live / VERSIONS_DIR / ".staging-test"
    shutil.copytree(folder, staged)
    version = json.loads((folder / CARD_FILE).read_text())["version"]
    publish(live, staged, version)
    return version


def test_versions_pointer_rollback_and_refusal_of_an_inconsistent_folder(tmp_path, variant):
    live = tmp_path / "live"
    a = _publish(live, SHIPPED)
    assert (live / CURRENT).is_symlink() and resolve_model_dir(live) == (live / VERSIONS_DIR / a).resolve()
    b = _publish(live, variant)
    assert a != b and resolve_model_dir(live).name == b
    assert sorted(p.name for p in (live / VERSIONS_DIR).iterdir()) == sorted([a, b])  # nothing half-written left
    run = subprocess.run([sys.executable, "-m", "model_training", "rollback", a, "--model-dir", str(live)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert resolve_model_dir(live).name == a
    broken = tmp_path / "broken"
    shutil.copytree(variant, broken)
    (broken / ONNX_FILE).write_bytes(b"not a model")
    with pytest.raises(ValueError, match="does not match its card"):
        check_model_folder(broken)
    bad = subprocess.run([sys.executable, "-m", "model_training", "rollback", "nosuch", "--model-dir", str(live)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode != 0 and resolve_model_dir(live).name == a


class Traffic:
    """Drawings sent without pause from a few threads; every answer recorded with its model version."""

    def __init__(self, url: str, png: bytes, threads: int = 3):
        self.url, self.png, self.stop = url, png, threading.Event()
        self.answers: list[tuple[float, int, str | None]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self):
        session = requests.Session()
        while not self.stop.is_set():
            try:
                r = session.post(f"{self.url}/api/v1/predict", files={"image": ("d.png", self.png, "image/png")},
                                 timeout=30)
                version = r.json().get("model_version") if r.status_code == 200 else None
                status = r.status_code
            except requests.RequestException:
                status, version = -1, None
            with self.lock:
                self.answers.append((time.time(), status, version))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def since(self, t0: float) -> list[tuple[float, int, str | None]]:
        with self.lock:
            return [a for a in self.answers if a[0] >= t0]


def _wait_for(traffic: Traffic, version: str, timeout: float = 20) -> float:
    """Seconds until every answer names `version` (checked over a window of answers)."""
    start = time.time()
    while time.time() - start < timeout:
        recent = traffic.since(time.time() - 1.0)
        if len(recent) >= 5 and all(v == version for _, _, v in recent[-5:]):
            return time.time() - start
        time.sleep(0.2)
    raise AssertionError(f"workers did not switch to {version} within {timeout} s: {traffic.since(start)[-5:]}")


def test_hot_swap_under_drawing_traffic_then_a_broken_model_is_refused(tmp_path, variant, mnist_test):
    x, y = mnist_test
    live = tmp_path / "live"
    a = _publish(live, SHIPPED)
    # a Redis of its own: no other test's workers (serving another MODEL_DIR) may take these drawings
    server = RedisServer(tmp_path / "redis").start()
    stack = Stack({"REDIS_URL": server.url, "RATE_LIMIT": "off", "MODEL_DIR": str(live)}, tmp_path / "logs")
    try:
        stack.start_all()
        with Traffic(stack.url, digit_png(x[0])) as traffic:
            time.sleep(2)
            b = _publish(live, variant)
            switched = _wait_for(traffic, b)
            job = requests.post(f"{stack.url}/api/v1/jobs", files={"file": ("d.zip", make_zip(
                {f"{i}.png": digit_png(x[i]) for i in range(300)}), "application/zip")}, timeout=60).json()
            job = wait_job(stack.url, job["id"])
            assert {it["model_version"] for it in all_results(stack.url, job["id"])} == {b}

            # a model that fails to load: refused, the old one keeps serving, /readyz and the logs say so
            broken = tmp_path / "broken"
            shutil.copytree(variant, broken)
            (broken / ONNX_FILE).write_bytes(b"\x08\x07garbage, not an ONNX graph")
            card = json.loads((broken / CARD_FILE).read_text())
            card["files"][ONNX_FILE] = sha256_file(broken / ONNX_FILE)
            card["version"] = model_version(broken / ONNX_FILE)
            (broken / CARD_FILE).write_text(json.dumps(card))
            t_broken = time.time()
            c = _publish(live, broken)
            time.sleep(4)
            ready = requests.get(f"{stack.url}/readyz", timeout=10)
            assert ready.status_code == 200 and ready.json()["model_refused"]["serving"] == b, ready.text
            listed = requests.get(f"{stack.url}/api/v1/models", timeout=10).json()
            assert listed["serving"] == b and {v["version"] for v in listed["versions"]} == {a, b, c}
            assert {v for _, _, v in traffic.since(t_broken)} == {b}
        answers = traffic.answers
        assert len(answers) > 50 and all(status == 200 for _, status, _ in answers), \
            [a for a in answers if a[1] != 200][:5]
        assert {v for _, _, v in answers} == {a, b}  # every answer names the model that computed it
        assert switched < 10
        print(f"hot swap: {len(answers)} drawings, 0 failed, every answer named {a} or {b}; "
              f"all answers from {b} {switched:.1f} s after the pointer moved")
        logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log"))
        assert "refused" in logs and c in logs
    finally:
        stack.stop_all()
        server.stop()
