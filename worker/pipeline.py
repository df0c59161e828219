"""Raw inputs -> normalised digits -> batched predictions -> result records (no Celery here)."""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from digitflow.frontend import to_digit
from digitflow.imaging import ImageError, decode, preview
from digitflow.jobstore import DIGIT_MAGIC
from worker import metrics
from worker.engine import Engine

log = logging.getLogger(__name__)
POISON = {"error": {"code": "processing_failed", "message": "the image could not be processed after repeated tries"}}


def prepare(raw: bytes, max_pixels: int) -> np.ndarray:
    """One stored input (encoded image, or a digit the web already normalised) -> uint8 [28,28]."""
    return prepare_with_preview(raw, max_pixels)[0]


def prepare_with_preview(raw: bytes, max_pixels: int) -> tuple[np.ndarray, bytes | None]:
    """(the 28x28 digit, a small preview of the upload; None for digits the web normalised).
    A refused image raises ImageError with the preview attached (`exc.preview`), so review still shows it."""
    if raw.startswith(DIGIT_MAGIC):
        return np.frombuffer(raw[len(DIGIT_MAGIC) :], dtype=np.uint8).reshape(28, 28), None
    img, grey = decode(raw, max_pixels)
    small = preview(raw, img, grey)
    try:
        return to_digit(grey), small
    except ImageError as exc:
        exc.preview = small
        raise


@dataclass
class Batch:
    results: dict[int, dict[str, Any]] = field(default_factory=dict)  # {digit, model_version, ...} or {error}
    digits: dict[int, bytes] = field(default_factory=dict)  # the 784-byte digits the model saw
    previews: dict[int, bytes] = field(default_factory=dict)  # small pictures of the uploads (review)
    previews_are_inputs: bool = False  # every input is its own preview (small images browsers show)


def run_batch(engine: Engine, inputs: dict[int, bytes], max_pixels: int, batch_size: int) -> Batch:
    """Decode, normalise and predict a set of inputs (a chunk, or concurrent drawings) in model batches."""
    out = Batch()
    digits: dict[int, np.ndarray] = {}
    for index, raw in inputs.items():
        try:
            digits[index], small = prepare_with_preview(raw, max_pixels)
            if small is not None:
                out.previews[index] = small
        except ImageError as exc:
            out.results[index] = {"error": exc.as_dict()}
            if getattr(exc, "preview", None) is not None:
                out.previews[index] = exc.preview
        except Exception as exc:  # a decoder bug must cost one image, not the chunk
            out.results[index] = {"error": {"code": "invalid_image", "message": f"cannot process image: {exc}"}}
    order = list(digits)
    for start in range(0, len(order), batch_size):
        part = order[start : start + batch_size]
        x = np.stack([digits[i] for i in part]).astype(np.float32)[..., None] / 255.0
        started = time.perf_counter()
        probs = engine.predict(x)
        metrics.model_call(time.perf_counter() - started, len(part))
        out.results.update(zip(part, records(probs, engine.model["version"]), strict=True))
    out.digits = {i: d.tobytes() for i, d in digits.items()}
    out.previews_are_inputs = bool(inputs) and all(out.previews.get(i) == raw for i, raw in inputs.items())
    return out


def warm_up(engine: Engine, max_pixels: int, batch_size: int) -> None:
    """One full model batch of a drawn PNG through decode, front end, preview and model, so that a worker's
    first job does not pay the first-use costs (decoder plugins, the front end's first calls, ONNX Runtime's
    buffers for a full batch). Nothing is recorded: no metrics, no results."""
    img = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(img).line((14, 5, 14, 23), fill=255, width=3)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    try:
        digit, _ = prepare_with_preview(buf.getvalue(), max_pixels)
        engine.predict(np.repeat(digit[None, ..., None].astype(np.float32) / 255.0, batch_size, axis=0))
    except Exception as exc:  # a warm-up only saves time: it must never stop a worker from starting
        log.warning("warm-up batch failed (the first job will be slower): %s", exc)


def records(probs: np.ndarray, version: str) -> list[dict[str, Any]]:
    """A batch of predictions [n, 10], each naming the model version that computed it (probabilities to 6
    decimals; rounded for the whole batch at once: per value in Python it cost 15 times as much)."""
    probs = np.asarray(probs, dtype=np.float64)
    rounded = np.round(probs, 6).tolist()
    return [{"digit": d, "model_version": version, "confidence": p[d], "probabilities": p}
            for d, p in zip(np.argmax(probs, axis=1).tolist(), rounded, strict=True)]


def record(probs: np.ndarray, version: str) -> dict[str, Any]:
    """One prediction [10] (see records)."""
    return records(np.asarray(probs)[None], version)[0]
