"""Scores of a model on labelled real sets, through the service's decoding and front end."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import keras
import numpy as np

from digitflow.labelled import read_labelled, to_digits
from model_training.data import to_model_input


@lru_cache(maxsize=8)
def set_digits(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(model input [N,28,28,1], labels, refused) of a labelled set; the front end runs once per process."""
    labelled = read_labelled(path)
    digits, refused = to_digits(labelled.images)
    return to_model_input(digits), labelled.labels, refused


def load_model(folder: Path) -> keras.Model:
    """best.keras of a run folder or model.keras of a model folder."""
    folder = Path(folder)
    return keras.models.load_model(folder / ("best.keras" if (folder / "best.keras").exists() else "model.keras"))


def score(probs: np.ndarray, labels: np.ndarray, refused: np.ndarray) -> dict:
    right = (probs.argmax(1) == labels) & ~refused
    return {"n": int(len(labels)), "accuracy": float(right.mean()), "refused": int(refused.sum())}


def score_run(sets: dict[str, Path], model: keras.Model) -> dict[str, dict]:
    """{set name: {n, accuracy, refused}} for every set that exists (a refused image counts as wrong)."""
    out = {}
    for name, path in sets.items():
        if not Path(path).exists():
            continue
        x, y, refused = set_digits(str(path))
        out[name] = score(np.asarray(model.predict(x, batch_size=1000, verbose=0)), y, refused)
    return out

