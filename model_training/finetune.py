"""Fine-tuning on labelled sets (people's corrections, other writers' scans), with MNIST replayed.

The labelled images go through the service's decoding and front end, exactly as uploads do. A share
of them is held out for validation: by writer where the set says who wrote what (a `writer` column,
or a regular expression over the file names), so that validation measures writers the model has not
seen; else by image, stratified by label. MNIST training images are replayed beside them (`replay`
MNIST images per labelled image) so the model keeps MNIST; the held-out share joins the MNIST
validation split, and the best checkpoint is the one with the best pooled validation accuracy.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitflow.contract import sha256_file
from digitflow.labelled import LabelledSet, read_labelled, to_digits

log = logging.getLogger("model_training")


@dataclass
class LabelledData:
    x_train: np.ndarray  # uint8 [N,28,28], as the front end gives them
    y_train: np.ndarray
    x_held: np.ndarray
    y_held: np.ndarray
    sets: list[dict]  # per set: name, sha256, images, refused, train, held_out, split


def writers_of(filenames: list[str], given: list[str] | None, pattern: str | None) -> list[str] | None:
    """Who wrote each image: the set's writer column, else group 1 of `pattern` on the file name."""
    if given:
        return given
    if not pattern:
        return None
    rx = re.compile(pattern)
    found = [rx.search(f) for f in filenames]
    if not all(found):
        missing = next(f for f, m in zip(filenames, found, strict=True) if not m)
        raise ValueError(f"--writer-pattern {pattern!r} does not match {missing!r}")
    return [m.group(1) for m in found]


def held_out_mask(labels: np.ndarray, writers: list[str] | None, share: float, seed: int) -> np.ndarray:
    """True for the held-out images: whole writers (about `share` of them) or, without writers, a
    stratified `share` of each label."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    if share <= 0:
        return held
    if writers:
        names = np.array(sorted(set(writers)))
        chosen = set(rng.permutation(names)[: max(1, round(share * len(names)))])
        return np.array([w in chosen for w in writers])
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        held[rng.permutation(idx)[: round(share * len(idx))]] = True
    return held


def held_out_by(config: dict, labelled: LabelledSet) -> np.ndarray:
    """The images of `labelled` that a fine-tuning run with this training config held out (never trained on).

    The split is a function of the set and the config (holdout share, split seed, writer pattern), so an
    export or a check can score a set the model was fine-tuned on by the part it did not see.
    """
    writers = writers_of(labelled.filenames, labelled.writers, config.get("writer_pattern"))
    return held_out_mask(labelled.labels, writers, float(config.get("holdout") or 0.0), int(config["split_seed"]))


def held_out_if_trained(path: str | Path, trained_sets: list[dict] | None, config: dict) -> np.ndarray | None:
    """None if the set at `path` is not one the model was fine-tuned on (matched by SHA-256 against a
    card's `labelled_sets` or a run summary's `labelled`); else the mask of the images it held out."""
    digests = {d.get("sha256") for d in trained_sets or []} - {None}
    if not Path(path).is_file() or sha256_file(Path(path)) not in digests:
        return None
    return held_out_by(config, read_labelled(path))


def load_labelled(paths: list[str], share: float, seed: int, writer_pattern: str | None = None) -> LabelledData:
    """Every labelled set through the front end (refused images dropped), split into train and held-out."""
    xs, ys, xh, yh, info = [], [], [], [], []
    for path in paths:
        s = read_labelled(path)
        digits, refused = to_digits(s.images)
        writers = writers_of(s.filenames, s.writers, writer_pattern)
        held = held_out_mask(s.labels, writers, share, seed) & ~refused
        train = ~held & ~refused
        xs.append(digits[train])
        ys.append(s.labels[train])
        xh.append(digits[held])
        yh.append(s.labels[held])
        info.append({"name": s.name, "path": str(Path(path).resolve()), "sha256": sha256_file(Path(path))
                     if Path(path).is_file() else None, "images": len(s), "refused": int(refused.sum()),
                     "train": int(train.sum()), "held_out": int(held.sum()),
                     "split": f"by writer ({len(set(writers))} writers)" if writers else "by image"})
        log.info("labelled set %s: %d images, %d refused by the front end, %d to train, %d held out (%s)",
                 s.name, len(s), info[-1]["refused"], info[-1]["train"], info[-1]["held_out"], info[-1]["split"])
    cat = lambda parts, shape: np.concatenate(parts) if parts else np.zeros(shape, np.uint8)  # noqa: E731
    return LabelledData(cat(xs, (0, 28, 28)), cat(ys, (0,)).astype(np.int64), cat(xh, (0, 28, 28)),
                        cat(yh, (0,)).astype(np.int64), info)


def replay_sample(train_idx: np.ndarray, n_labelled: int, replay: float, seed: int) -> np.ndarray:
    """The MNIST training indices replayed beside n_labelled labelled images (all of them at most)."""
    n = min(len(train_idx), max(1, round(replay * n_labelled)))
    return np.sort(np.random.default_rng(seed).choice(train_idx, n, replace=False))
