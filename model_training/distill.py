"""Knowledge distillation: training targets that mix the true label with teachers' probabilities.

A teacher is a trained model of this pipeline: a run folder (best.keras + config.json) or a model
folder (model.keras + model_card.json). Its averaged, temperature-softened probabilities on the
training images carry which digits a stroke resembles (a 7 that looks like a 1), which a one-hot
label does not (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network").

Targets are computed once, on the un-augmented training images; the augmentations are small
(+-10 degrees, +-10% zoom and shift) and keep the digit, so the same soft target serves every
augmented copy. A teacher must have been trained with the student's validation split: one that
had trained on the student's validation images would leak them into the student's targets and
make its validation accuracy (which chooses checkpoint and model) optimistic.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from digitflow.contract import CARD_FILE, KERAS_FILE, resolve_model_dir
from model_training.data import one_hot


def load_teacher(path: str | Path) -> tuple[keras.Model, dict]:
    """(model, training config) of a run folder or a model folder."""
    path = resolve_model_dir(path)
    cfg = training_config(path)
    return keras.models.load_model(path / ("best.keras" if (path / "best.keras").exists() else KERAS_FILE)), cfg


def training_config(path: str | Path) -> dict:
    """The training config of a run folder (best.keras + config.json) or a model folder (model.keras + card)."""
    path = resolve_model_dir(path)
    if (path / "best.keras").exists() and (path / "config.json").exists():
        return json.loads((path / "config.json").read_text())
    if (path / KERAS_FILE).exists() and (path / CARD_FILE).exists():
        return json.loads((path / CARD_FILE).read_text())["training_config"]
    raise ValueError(f"teacher {path}: neither a run folder (best.keras, config.json) nor a model folder "
                     f"({KERAS_FILE}, {CARD_FILE})")


def describe(path: str | Path) -> str:
    """A name for a teacher that survives the folder being replaced: 'model <version>' or the run folder."""
    path = resolve_model_dir(path)
    if (path / CARD_FILE).exists() and not (path / "best.keras").exists():
        return f"model {json.loads((path / CARD_FILE).read_text())['version']}"
    return f"run {run_label(path)}"


def run_label(run: Path) -> str:
    """'<runs-dir name>/<timestamp>': runs started in the same second in different runs-dirs stay apart."""
    return "/".join(Path(run).resolve().parts[-2:])


def check_split(path: str | Path, teacher_cfg: dict, split_seed: int, val_size: int) -> None:
    """Refuse a teacher whose training split included the student's validation images."""
    theirs = (teacher_cfg.get("split_seed", teacher_cfg.get("seed")), teacher_cfg.get("val_size"))
    if theirs != (split_seed, val_size):
        raise ValueError(
            f"teacher {path} was trained with validation split (seed, size) = {theirs}, the student uses "
            f"{(split_seed, val_size)}: it has seen the student's validation images"
        )


def soft_targets(teachers: list[keras.Model], x: np.ndarray, temperature: float) -> np.ndarray:
    """Mean teacher probabilities on x, softened: softmax(log p / T)."""
    probs = np.mean([np.asarray(t.predict(x, batch_size=1000, verbose=0)) for t in teachers], axis=0)
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    soft = np.exp(logits)
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


def mixed_targets(labels: np.ndarray, soft: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * one-hot(label) + weight * soft. With weight < 0.5 the argmax is always the label."""
    if not 0.0 <= weight < 0.5:
        raise ValueError(f"distillation weight must be in [0, 0.5) (the label must stay the argmax), got {weight}")
    return ((1.0 - weight) * one_hot(labels) + weight * soft).astype(np.float32)
