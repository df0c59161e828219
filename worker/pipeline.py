"""Raw inputs -> normalised digits -> batched predictions -> result records (no Celery here)."""

from __future__ import annotations

from typing import Any

import numpy as np

from digitflow.imaging import ImageError, normalise_bytes
from worker.engine import Engine
from worker.jobstore import DIGIT_MAGIC


def prepare(raw: bytes, max_pixels: int) -> np.ndarray:
    """One stored input (encoded image, or a digit the web already normalised) -> uint8 [28,28]."""
    if raw.startswith(DIGIT_MAGIC):
        return np.frombuffer(raw[len(DIGIT_MAGIC) :], dtype=np.uint8).reshape(28, 28)
    return normalise_bytes(raw, max_pixels)


def run_batch(
    engine: Engine, inputs: dict[int, bytes], max_pixels: int, batch_size: int
) -> tuple[dict[int, dict[str, Any]], dict[int, bytes]]:
    """Results by index ({digit, model_version, confidence, probabilities} or {error}) and the 784-byte digits."""
    results: dict[int, dict[str, Any]] = {}
    digits: dict[int, np.ndarray] = {}
    for index, raw in inputs.items():
        try:
            digits[index] = prepare(raw, max_pixels)
        except ImageError as exc:
            results[index] = {"error": exc.as_dict()}
        except Exception as exc:  # a decoder bug must cost one image, not the chunk
            results[index] = {"error": {"code": "invalid_image", "message": f"cannot process image: {exc}"}}
    order = list(digits)
    for start in range(0, len(order), batch_size):
        part = order[start : start + batch_size]
        x = np.stack([digits[i] for i in part]).astype(np.float32)[..., None] / 255.0
        probs = engine.predict(x)
        for i, p in zip(part, probs, strict=True):
            results[i] = record(p, engine.model["version"])
    return results, {i: d.tobytes() for i, d in digits.items()}


def record(probs: np.ndarray, version: str) -> dict[str, Any]:
    """One prediction, naming the model version that computed it."""
    digit = int(np.argmax(probs))
    return {
        "digit": digit,
        "model_version": version,
        "confidence": round(float(probs[digit]), 6),
        "probabilities": [round(float(v), 6) for v in probs],
    }
