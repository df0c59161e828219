"""Keep MNIST after fine-tuning: the fine-tuned weights averaged with the start's at a share chosen on validation.

WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"): a model fine-tuned from a start
stays in the start's basin, and the weights on the line between the two trade what was learnt (other
writers) against what was kept (MNIST), often better than either end. `finetune` tries a few shares of the
fine-tuned weights, recomputes batch norm for each mix on the fine-tuning's images (soup.py's rule), and
keeps the share with the best accuracy on the held-out labelled writers among those whose MNIST validation
accuracy is within `tolerance` percentage points of the start's. If none is, the share that keeps MNIST
best. The fine-tuned checkpoint itself stays in the run folder as tuned.keras.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import keras
import numpy as np

from model_training import distill, finetune
from model_training.data import Mnist, to_model_input
from model_training.soup import mixed_images
from model_training.swa import _bn_images, recompute_batch_norm
from model_training.train import TrainConfig, serving_digits, split_indices

log = logging.getLogger("model_training")
SHARES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # of the fine-tuned weights; the rest is the start's
TUNED = "tuned.keras"
BN_SAMPLE = 5000  # images of the fine-tuning's mix whose activations give each mix's batch-norm statistics


def _val_sets(data: Mnist, cfg: TrainConfig) -> tuple[tuple[np.ndarray, np.ndarray], finetune.LabelledData]:
    """MNIST validation as train.datasets builds it, and the labelled sets split as the fine-tuning split them."""
    _, val_idx = split_indices(data.y_train, cfg)
    mnist = (to_model_input(serving_digits(data.x_train[val_idx])), data.y_train[val_idx].astype(np.int64))
    return mnist, finetune.load_labelled(cfg.labelled, cfg.holdout, cfg.split_seed, cfg.writer_pattern)


def bn_sample(data: Mnist, cfg: TrainConfig, lab: finetune.LabelledData) -> np.ndarray:
    """A seeded sample of the fine-tuning's mix (soup.mixed_images): what each mix's batch norm is computed on."""
    bn = mixed_images(_bn_images(data, cfg), lab, cfg.replay, cfg.repeat)
    return bn[np.random.default_rng(cfg.seed).permutation(len(bn))[:BN_SAMPLE]]  # plenty for per-channel statistics


def set_mix(model: keras.Model, start: list[np.ndarray], tuned: list[np.ndarray], share: float,
            bn: np.ndarray) -> keras.Model:
    """Give `model` share x tuned + (1 - share) x start, with batch norm recomputed on `bn` for a true mix."""
    model.set_weights([(share * t + (1 - share) * s).astype(np.float32) for s, t in zip(start, tuned, strict=True)])
    if share < 1:
        recompute_batch_norm(model, bn)
    return model


def _scores(model: keras.Model, sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[int, float]]:
    """Per set: (right answers, summed cross-entropy)."""
    out = {}
    for name, (x, y) in sets.items():
        p = np.asarray(model.predict(x, batch_size=1000, verbose=0), dtype=np.float64)
        out[name] = (int((p.argmax(1) == y).sum()), float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).sum()))
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def choose(rows: list[dict], floor: float) -> dict:
    """The best held-out share among those within the MNIST floor (ties, or no held-out images: more fine-tuned
    weights); if none is within it, the share that keeps MNIST best."""
    feasible = [r for r in rows if r["mnist_val"] >= floor - 1e-12]
    if feasible:  # without held-out images (a small set): the most fine-tuned share MNIST allows
        return max(feasible, key=lambda r: (r["held_out"] if r["held_out"] is not None else 0.0, r["share"]))
    return max(rows, key=lambda r: (r["mnist_val"], r["share"]))


def apply(run_dir: Path, start: str | Path, data: Mnist, cfg: TrainConfig, tolerance_pp: float) -> dict:
    """Choose the share, write it as run_dir/best.keras, record the table in summary.json; returns the record."""
    run_dir = Path(run_dir)
    if not (run_dir / TUNED).exists():  # a second call (a resumed run) mixes from the fine-tuned weights again
        shutil.copyfile(run_dir / "best.keras", run_dir / TUNED)
    model = keras.models.load_model(run_dir / TUNED)
    tuned = model.get_weights()
    start_model, _ = distill.load_teacher(start)
    (x_mnist, y_mnist), lab = _val_sets(data, cfg)
    sets = {"mnist_val": (x_mnist, y_mnist)}
    if len(lab.y_held):
        sets["held_out"] = (to_model_input(lab.x_held), lab.y_held)
    else:
        log.warning("WiSE-FT: no held-out labelled images (a small set): the share is chosen on MNIST alone")
    bn, start = bn_sample(data, cfg, lab), start_model.get_weights()
    start_acc = _scores(start_model, {"mnist_val": sets["mnist_val"]})["mnist_val"][0] / len(y_mnist)
    floor = start_acc - tolerance_pp / 100
    rows = []
    for share in SHARES:
        sc = _scores(set_mix(model, start, tuned, share, bn), sets)
        rows.append({"share": share, "mnist_val": sc["mnist_val"][0] / len(y_mnist),
                     "held_out": sc["held_out"][0] / len(lab.y_held) if "held_out" in sc else None,
                     "right": sum(r for r, _ in sc.values()), "loss": sum(ls for _, ls in sc.values())})
        log.info("WiSE-FT %.1f of the fine-tuned weights: MNIST validation %.4f, held-out labelled %s",
                 share, rows[-1]["mnist_val"], _pct(rows[-1]["held_out"]))
    chosen = choose(rows, floor)
    set_mix(model, start, tuned, chosen["share"], bn).save(run_dir / "best.keras")
    n = len(y_mnist) + len(lab.y_held)  # the pooled validation of train.datasets
    record = {"tolerance_pp": tolerance_pp, "start_mnist_val": round(start_acc, 6), "share": chosen["share"],
              "within_tolerance": chosen["mnist_val"] >= floor - 1e-12,
              "shares": [{k: None if r[k] is None else round(r[k], 6) for k in ("share", "mnist_val", "held_out")}
                         for r in rows]}
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary.update(wise_ft=record, validation_accuracy=chosen["right"] / n, validation_loss=chosen["loss"] / n)
    summary_file.write_text(json.dumps(summary, indent=2))
    log.info("WiSE-FT: kept %.1f of the fine-tuned weights (MNIST validation %.4f, start %.4f, tolerance %.2f pp; "
             "held-out labelled %s)", chosen["share"], chosen["mnist_val"], start_acc, tolerance_pp, _pct(chosen["held_out"]))
    return record
