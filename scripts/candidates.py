"""Selection table of candidate runs, without the MNIST test split: MNIST validation errors (the split the
runs were validated on) and, through the service's front end, accuracy on labelled real sets with the share
right among the 95% most confident answers. A set a run was fine-tuned on is scored on its held-out images.

    python scripts/candidates.py RUN_OR_MODEL [...] [--set ../shared/data/real/cvl_valid.zip ...]

Prints a Markdown table (one row per folder, in the order given); choose by a rule written before reading it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from model_training import distill, finetune  # noqa: E402
from model_training.calibration import confidence_summary  # noqa: E402
from model_training.data import load_mnist, to_model_input  # noqa: E402
from model_training.scoring import load_model, set_digits  # noqa: E402
from model_training.soup import _info as soup_info  # noqa: E402
from model_training.train import TrainConfig, serving_digits, split_indices  # noqa: E402


def labelled_of(folder: Path) -> tuple[list[dict], dict]:
    """The labelled sets a run or model folder was fine-tuned on, and the config that split them."""
    info = soup_info(folder)  # a run's summary or a model's card
    return info.get("labelled") or info.get("labelled_sets") or [], distill.training_config(folder)


def row(folder: Path, mnist_val: tuple[np.ndarray, np.ndarray], sets: list[str]) -> list[str]:
    model = load_model(folder)
    x, y = mnist_val
    errors = int((model.predict(x, batch_size=1000, verbose=0).argmax(1) != y).sum())
    cells = [folder.as_posix(), f"{errors} of {len(y)}"]
    trained, config = labelled_of(folder)
    for path in sets:
        xs, ys, refused = set_digits(path)
        held = finetune.held_out_if_trained(path, trained, config)
        if held is not None:  # trained on: only what it held out
            xs, ys, refused = xs[held], ys[held], refused[held]
        probs = np.asarray(model.predict(xs, batch_size=1000, verbose=0))
        probs[refused] = 0.0  # a refused image counts as wrong and least confident
        right = (probs.argmax(1) == ys) & ~refused
        top = confidence_summary(probs, np.where(refused, -1, ys))["accuracy_top_95pct_confident"]
        cells.append(f"{right.mean():.2%} / {top:.2%}" + (" (held out)" if held is not None else ""))
    return cells


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path, help="run folders (best.keras) or model folders")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--set", action="append", default=[], help="labelled set to score (repeatable)")
    ap.add_argument("--allow-subset", action="store_true", help="accept IDX files with fewer than 60k images (tests)")
    args = ap.parse_args()
    cfg = distill.training_config(str(args.folders[0]))
    split = TrainConfig(val_size=cfg["val_size"], split_seed=cfg["split_seed"])
    data = load_mnist(args.data_dir, require_full=not args.allow_subset)
    val_idx = split_indices(data.y_train, split)[1]
    mnist_val = to_model_input(serving_digits(data.x_train[val_idx])), data.y_train[val_idx].astype(np.int64)
    names = [Path(s).stem for s in args.set]
    print("| folder | MNIST validation errors | " + " | ".join(f"{n}: accuracy / top 95%" for n in names) + " |")
    print("| --- | --- |" + " --- |" * len(names))
    for folder in args.folders:
        print("| " + " | ".join(row(folder, mnist_val, args.set)) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
