"""A weight-averaged "model soup" (Wortsman et al. 2022): runs continued from one start, averaged.

Runs fine-tuned from the same weights stay in one basin, so the mean of their weights is itself a good
model that trades off what each learnt (here: continental styles against MNIST). Batch-norm statistics
are recomputed for the mean (as in swa.py). The result is a run folder like any other: validated on the
runs' common validation split, `export` promotes it. The runs must share the architecture and split.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import keras
import numpy as np

from digitflow.contract import CARD_FILE, resolve_model_dir
from model_training import distill, finetune
from model_training.data import Mnist, one_hot, stratified_split, to_model_input
from model_training.swa import _bn_images, recompute_batch_norm
from model_training.train import TrainConfig, serving_digits

log = logging.getLogger("model_training")


def soup(data: Mnist, runs: list[Path], run_dir: Path, weights: list[float] | None = None) -> dict:
    """Average the best checkpoints of `runs` (optionally weighted) into run_dir/best.keras."""
    started = time.time()
    if len(runs) < 2:
        raise ValueError("a soup needs at least two runs")
    weights = weights or [1.0] * len(runs)
    if len(weights) != len(runs) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError("one non-negative weight per run, not all zero")
    configs = [distill.training_config(r) for r in runs]
    first = configs[0]
    for r, c in zip(runs, configs, strict=True):
        distill.check_split(r, c, first["split_seed"], first["val_size"])
        if c["architecture"] != first["architecture"]:
            raise ValueError(f"{r} is a {c['architecture']}, not a {first['architecture']}")
    models = [distill.load_teacher(r)[0] for r in runs]
    share = np.array(weights, dtype=np.float64) / sum(weights)
    mean = [sum(s * m.get_weights()[i] for s, m in zip(share, models, strict=True)).astype(np.float32)
            for i in range(len(models[0].get_weights()))]
    model = models[0]
    model.set_weights(mean)
    cfg = TrainConfig(architecture=first["architecture"], split_seed=first["split_seed"], val_size=first["val_size"])
    recompute_batch_norm(model, bn_images(data, cfg, configs))
    _, val_idx = stratified_split(data.y_train, min(cfg.val_size, len(data.y_train) // 10), cfg.split_seed)
    x_val = to_model_input(serving_digits(data.x_train[val_idx]))
    y_val = data.y_train[val_idx].astype(np.int64)
    probs = np.asarray(model.predict(x_val, batch_size=1000, verbose=0))
    val_acc = float((probs.argmax(1) == y_val).mean())
    val_loss = float(keras.losses.categorical_crossentropy(one_hot(y_val), probs).numpy().mean())
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "best.keras")
    labels = [distill.describe(r) for r in runs]
    config = {**first, "soup_of": labels, "soup_weights": [float(w) for w in share]}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    with (run_dir / "history.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["epoch", "accuracy", "loss", "val_accuracy", "val_loss"])
        w.writeheader()
        w.writerow({"epoch": 0, "accuracy": val_acc, "loss": val_loss, "val_accuracy": val_acc, "val_loss": val_loss})
    infos = [_info(r) for r in runs]
    labelled = _labelled_sets(infos)
    tuned = [c for c in configs if c.get("labelled")]
    if tuned:  # the fine-tuned ingredients' split says which labelled images the soup never trained on
        config.update({k: tuned[0].get(k) for k in ("labelled", "holdout", "replay", "repeat", "writer_pattern")})
        if len({_split(c) for c in tuned}) > 1:
            config["holdout"] = 0.0  # they held out different images: none is held out from all of them
    summary = {
        "architecture": first["architecture"],
        "parameters": int(model.count_params()),
        "macs_per_image": infos[0]["macs_per_image"],
        "validation_accuracy": val_acc,
        "validation_loss": val_loss,
        "epochs": max(i["epochs"] for i in infos),
        "best_epoch": None,
        "training_seconds": sum(i["training_seconds"] for i in infos) + (time.time() - started),
        "data_sha256": data.sha256,
        "config": config,
        "teachers": [],
        "init_from": infos[0].get("init_from"),
        "soup": {"of": labels, "weights": [float(w) for w in share]},
        **({"labelled": labelled} if labelled else {}),  # what any ingredient was fine-tuned on
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("soup of %s: validation accuracy %.4f, loss %.4f", ", ".join(labels), val_acc, val_loss)
    return summary


def bn_images(data: Mnist, cfg: TrainConfig, configs: list[dict]) -> np.ndarray:
    """What the batch-norm statistics are recomputed on: MNIST training images, and where a run was
    fine-tuned on labelled sets, those sets' training share mixed in as the fine-tuning mixed them (the
    new writers' statistics are part of what it learnt; MNIST's alone cost the soup ~0.2 pp on them)."""
    images = _bn_images(data, cfg)
    tuned = next((c for c in configs if c.get("labelled")), None)
    if tuned is None:
        return images
    lab = finetune.load_labelled(tuned["labelled"], tuned["holdout"], tuned["split_seed"], tuned.get("writer_pattern"))
    return mixed_images(images, lab, tuned.get("replay", 1.0), tuned.get("repeat", 1))


def mixed_images(mnist: np.ndarray, lab: finetune.LabelledData, replay: float, repeat: int = 1) -> np.ndarray:
    """MNIST images and the labelled training share in the proportion the fine-tuning replayed them
    (each labelled image `repeat` times, `replay` MNIST images per view)."""
    n_mnist = min(len(mnist), max(1, round(replay * repeat * len(lab.y_train))))
    return np.concatenate([mnist[:n_mnist], np.tile(to_model_input(lab.x_train), (repeat, 1, 1, 1))])


def _labelled_sets(infos: list[dict]) -> list[dict]:
    """The labelled sets any ingredient was fine-tuned on (a run's `labelled`, a card's `labelled_sets`), once each."""
    seen: dict[str, dict] = {}
    for info in infos:
        for d in info.get("labelled") or info.get("labelled_sets") or []:
            seen.setdefault(d.get("sha256") or d["name"], d)
    return list(seen.values())


def _split(config: dict) -> tuple:
    return (tuple(config["labelled"]), config.get("holdout"), config["split_seed"], config.get("writer_pattern"))


def _info(folder: Path) -> dict:
    """A run's summary, or a model folder's card (same field names)."""
    folder = resolve_model_dir(folder)
    name = "summary.json" if (folder / "summary.json").exists() else CARD_FILE
    return json.loads((folder / name).read_text())
