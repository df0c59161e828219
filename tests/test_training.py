"""End-to-end training on a small subset: every file is produced and the card matches the files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from digitflow.contract import sha256_file
from model_training.data import write_idx

pytestmark = pytest.mark.slow


def test_train_then_export_produces_a_consistent_model(tmp_path, mnist_test):
    x, y = mnist_test
    data = tmp_path / "mnist"
    data.mkdir()
    # The carried fixture holds only the test split: train on part of it, report on the rest.
    write_idx(data / "train-images-idx3-ubyte.gz", x[:6000])
    write_idx(data / "train-labels-idx1-ubyte.gz", y[:6000])
    write_idx(data / "t10k-images-idx3-ubyte.gz", x[9000:])
    write_idx(data / "t10k-labels-idx1-ubyte.gz", y[9000:])
    env_cmd = [sys.executable, "-m", "model_training"]
    train = subprocess.run(
        [*env_cmd, "train", "--data-dir", str(data), "--architecture", "tiny", "--epochs", "1", "--allow-subset",
         "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=300,
    )
    assert train.returncode == 0, train.stdout + train.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    for name in ("best.keras", "history.csv", "summary.json", "config.json", "train.log"):
        assert (run_dir / name).is_file(), name
    assert "epoch 1:" in (run_dir / "train.log").read_text()

    models = tmp_path / "models"
    export = subprocess.run([*env_cmd, "export", str(run_dir), "--model-dir", str(models), "--data-dir", str(data)],
                            capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stdout + export.stderr
    card = json.loads((models / "model_card.json").read_text())
    for name in ("model.keras", "model.onnx", "report/training_curves.png", "report/confusion_matrix.png",
                 "report/misclassified.png", "report/README.md", "report/metrics.json"):
        assert (models / name).is_file(), name
    assert card["files"] == {n: sha256_file(models / n) for n in ("model.onnx", "model.keras")}
    assert card["version"] == card["files"]["model.onnx"][:12]
    assert card["architecture"] == "tiny" and card["epochs"] == 1
    assert card["input"]["shape"] == ["N", 28, 28, 1] and card["output"]["shape"] == ["N", 10]
    assert card["onnx_keras_max_abs_diff"] <= 1e-4
    assert 0.5 < card["test_accuracy"] <= 1.0
    assert set(card["per_class"]) == {str(d) for d in range(10)}
    assert set(card["data_sha256"]) == {p.name for p in data.iterdir()}
    metrics = json.loads((models / "report" / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion_matrix"])) == 1000
