"""`python -m model_training evaluate`: the shipped model's test accuracy and both architectures' speed."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from digitflow.contract import ONNX_FILE, load_card
from model_training.data import load_test_split, to_model_input


def onnx_throughput(onnx_path: Path, batch: int = 256, threads: int = 0, seconds: float = 3.0) -> float:
    """Images per second of ONNX Runtime at a batch size (median of repeated timed calls)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random((batch, 28, 28, 1), dtype=np.float32)
    sess.run(None, {name: x})
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return batch / float(np.median(times))


def untrained_onnx(path: Path, architecture: str = "seed") -> Path:
    """An architecture (by default the seed design), untrained, as ONNX (speed does not depend on the weights)."""
    from model_training.architectures import build
    from model_training.export import to_onnx

    to_onnx(build(architecture), path)
    return path


def evaluate_shipped(model_dir: Path, data_dir: str | None) -> int:
    from model_training.export import onnx_probs

    card = load_card(model_dir)
    if data_dir:
        x_raw, y = load_test_split(data_dir)
    else:
        import keras

        (_, _), (x_raw, y) = keras.datasets.mnist.load_data()
    probs = onnx_probs(model_dir / ONNX_FILE, to_model_input(x_raw))
    acc = float((probs.argmax(1) == y).mean())
    print(f"shipped model {card['architecture']} {card['version']}: test accuracy {acc:.4f} "
          f"({int((probs.argmax(1) != y).sum())} misclassified); card says {card['test_accuracy']:.4f}")
    ours = onnx_throughput(model_dir / ONNX_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        seed = onnx_throughput(untrained_onnx(Path(tmp) / "seed.onnx"))
    print("ONNX Runtime, batch 256, all cores:")
    print(f"  {card['architecture']:<8} {card['macs_per_image'] / 1e6:5.1f} M MAC  {ours:8.0f} images/s")
    print(f"  {'seed':<8} {29.7:5.1f} M MAC  {seed:8.0f} images/s   (ratio {ours / seed:.2f}x)")
    return 0 if abs(acc - card["test_accuracy"]) < 1e-6 else 1
