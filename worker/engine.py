"""The inference engine: ONNX Runtime by default, Keras as the reference; one per worker process."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from digitflow.contract import KERAS_FILE, ONNX_FILE, load_card, model_summary


def default_threads(processes: int | None = None) -> int:
    """Cores divided among the worker processes that share them (at least one thread each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, processes or 1))


class Engine:
    """Loads the model once and predicts probabilities for float32 [N,28,28,1] batches."""

    def __init__(self, model_dir: str | Path, backend: str = "onnx", threads: int = 1):
        self.model_dir = Path(model_dir)
        self.backend = backend
        self.card = load_card(self.model_dir)
        self.model = model_summary(self.card)
        if backend == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Idle intra-op threads would spin between the small batches of drawings, burning the CPU
            # that the web process and the other workers on the same cores need.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                str(self.model_dir / ONNX_FILE), opts, providers=["CPUExecutionProvider"]
            )
            self._input = self._session.get_inputs()[0].name
        elif backend == "keras":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import keras

            self._keras = keras.models.load_model(self.model_dir / KERAS_FILE)
        else:
            raise ValueError(f"unknown inference backend {backend!r} (onnx or keras)")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities [N,10] for inputs float32 [N,28,28,1] in [0,1], ink high."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.backend == "onnx":
            return self._session.run(None, {self._input: x})[0]
        return np.asarray(self._keras(x, training=False))
