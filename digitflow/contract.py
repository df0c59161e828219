"""The model-file contract between training (which writes it) and the workers (which load it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ONNX_FILE = "model.onnx"
KERAS_FILE = "model.keras"
CARD_FILE = "model_card.json"
REPORT_DIR = "report"

IMAGE_SIZE = 28
NUM_CLASSES = 10
INPUT_SPEC = {
    "shape": ["N", IMAGE_SIZE, IMAGE_SIZE, 1],
    "dtype": "float32",
    "range": [0.0, 1.0],
    "polarity": "ink high (MNIST)",
}
OUTPUT_SPEC = {"shape": ["N", NUM_CLASSES], "dtype": "float32", "meaning": "softmax probabilities"}


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_version(onnx_path: str | Path) -> str:
    """The model's version: the first 12 hex digits of the ONNX file's SHA-256."""
    return sha256_file(onnx_path)[:12]


def load_card(model_dir: str | Path) -> dict[str, Any]:
    """Read the model card that sits beside the model files."""
    return json.loads((Path(model_dir) / CARD_FILE).read_text())


def model_summary(card: dict[str, Any]) -> dict[str, Any]:
    """The short description every prediction carries."""
    return {
        "version": card["version"],
        "architecture": card["architecture"],
        "test_accuracy": card.get("test_accuracy"),
    }
