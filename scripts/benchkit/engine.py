"""1. Engine: the model only, in a spawned child (TensorFlow never enters the bench's process)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchkit.common import in_child, log
from digitflow.contract import load_card


def _time_calls(fn, x, seconds: float) -> float:
    """Median seconds per call of fn(x), after two warm-up calls."""
    fn(x)
    fn(x)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def engine_child(model_dir: str, batches: list[int], seconds: float, keras_too: bool, others_too: bool) -> list[dict]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from worker.engine import Engine, default_threads

    cores = default_threads()
    card = load_card(model_dir)
    rng = np.random.default_rng(0)
    rows = []

    def measure(label: str, backend: str, threads: str, fn):
        for b in batches:
            x = rng.random((b, 28, 28, 1), dtype=np.float32)
            s = _time_calls(fn, x, seconds)
            rows.append({"model": label, "backend": backend, "threads": threads, "batch": b,
                         "ms_per_call": s * 1e3, "images_per_s": b / s})

    shipped = f"{card['architecture']} (shipped, {card['macs_per_image'] / 1e6:.1f} M MAC)"
    for t in sorted({1, cores}):
        eng = Engine(model_dir, "onnx", t)
        measure(shipped, "ONNX Runtime", str(t), eng.predict)
    if keras_too:
        eng = Engine(model_dir, "keras")
        measure(shipped, "Keras (direct call)", "TF default", eng.predict)
    if others_too:
        import onnxruntime as ort

        from model_training.architectures import build, count_macs
        from model_training.evaluate import untrained_onnx

        for name, what in (("seed", "original design"), ("wide", "same budget, more weights late")):
            if name == card["architecture"]:
                continue
            model = build(name)
            label = f"{name} ({what}, untrained, {count_macs(model) / 1e6:.1f} M MAC)"
            with tempfile.TemporaryDirectory() as tmp:
                path = untrained_onnx(Path(tmp) / f"{name}.onnx", name)
                for t in sorted({1, cores}):
                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads, opts.inter_op_num_threads = t, 1
                    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                    iname = sess.get_inputs()[0].name
                    measure(label, "ONNX Runtime", str(t), lambda x, s=sess, n=iname: s.run(None, {n: x})[0])
            if keras_too:
                measure(label, "Keras (direct call)", "TF default", lambda x, m=model: np.asarray(m(x, training=False)))
    return rows


def engine_section(model_dir: str, smoke: bool) -> list[dict]:
    """Section 1, logged row by row: ONNX Runtime; outside a smoke run also Keras, the seed
    architecture and `wide` (untrained: the cost of the designs the shipped model was chosen against)."""
    log("engine: ONNX Runtime" + ("" if smoke else ", Keras, the seed architecture and wide"))
    rows = in_child(engine_child, model_dir, [1, 32, 256], 0.1 if smoke else 0.7, not smoke, not smoke)
    for r in rows:
        log(f"  {r['model']:<36} {r['backend']:<20} t={r['threads']:<10} batch {r['batch']:>3}: "
            f"{r['images_per_s']:>9,.0f} images/s  {r['ms_per_call']:7.2f} ms/call")
    return rows
