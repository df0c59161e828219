"""The model-file contract between training (which writes it) and the workers (which load it)."""

from __future__ import annotations

import hashlib
import json
import os
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


# -- versions and the serving pointer (a live MODEL_DIR) ------------------------------------------
# A live MODEL_DIR holds versions/<version>/ (model files, card, report) and `current`, a symlink to
# the version being served, replaced atomically (rename) by `export` and `rollback`: a reader resolves
# the pointer once and reads one complete folder. A folder with the files at its top and no pointer
# (the repository's models/) is a single, fixed version.
VERSIONS_DIR = "versions"
CURRENT = "current"
REFUSED_KEY = "df:model:refused"  # Redis hash: pointer target -> {"error", "at", "serving"} a worker refused
SERVING_KEY = "df:model:serving"  # Redis hash: pointer target -> when a worker last switched to it


def resolve_model_dir(model_dir: str | Path) -> Path:
    """The folder of the version being served: MODEL_DIR/current resolved, or MODEL_DIR itself."""
    model_dir = Path(model_dir)
    pointer = model_dir / CURRENT
    return pointer.resolve() if pointer.is_symlink() or pointer.is_dir() else model_dir


def serving_target(model_dir: str | Path) -> str:
    """What the pointer names now (cheap: one readlink), to notice a switch between tasks."""
    pointer = Path(model_dir) / CURRENT
    try:
        return str(pointer.readlink())
    except OSError:
        return "."


def point_to(model_dir: str | Path, version: str) -> None:
    """Switch MODEL_DIR/current to versions/<version> atomically (a symlink renamed over the old one)."""
    model_dir = Path(model_dir)
    target = Path(VERSIONS_DIR) / version
    if not (model_dir / target / CARD_FILE).is_file():
        raise FileNotFoundError(f"no version {version} in {model_dir / VERSIONS_DIR}")
    tmp = model_dir / f".{CURRENT}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, model_dir / CURRENT)


def check_model_folder(folder: str | Path) -> dict[str, Any]:
    """The card of a complete, consistent model folder; raises ValueError saying what is wrong."""
    folder = Path(folder)
    try:
        card = load_card(folder)
    except (OSError, ValueError) as exc:
        raise ValueError(f"unreadable model card in {folder}: {exc}") from None
    for name, digest in (card.get("files") or {}).items():
        path = folder / name
        if not path.is_file():
            raise ValueError(f"{folder}: {name} is missing")
        if sha256_file(path) != digest:
            raise ValueError(f"{folder}: {name} does not match its card (SHA-256 differs)")
    if ONNX_FILE not in (card.get("files") or {}):
        raise ValueError(f"{folder}: the card lists no {ONNX_FILE}")
    if card.get("version") != model_version(folder / ONNX_FILE):
        raise ValueError(f"{folder}: card version {card.get('version')} is not the ONNX file's")
    for key, spec in (("input", INPUT_SPEC), ("output", OUTPUT_SPEC)):
        if (card.get(key) or {}).get("shape") != spec["shape"]:
            raise ValueError(f"{folder}: the card's {key} shape is not {spec['shape']}")
    return card


def list_versions(model_dir: str | Path) -> list[dict[str, Any]]:
    """Every version in MODEL_DIR/versions (or the single flat one), newest first, with its card."""
    model_dir = Path(model_dir)
    folders = sorted((model_dir / VERSIONS_DIR).glob("*/" + CARD_FILE)) if (model_dir / VERSIONS_DIR).is_dir() else []
    if not folders and (model_dir / CARD_FILE).is_file():
        folders = [model_dir / CARD_FILE]
    cards = []
    for path in folders:
        try:
            cards.append((path.stat().st_mtime, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return [card for _, card in sorted(cards, key=lambda c: -c[0])]
