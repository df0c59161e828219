"""The effect of each augmentation on validation: short runs that continue one model, one setting at a time.

Usage: python scripts/augmentation_study.py [--from models] [--epochs 2] [--runs-dir runs/augment]
                                            [--only NAME ...] [--out docs/augmentation-study.md]

Every run starts from the same model (by default the shipped one), trains `--epochs` epochs on the MNIST
training split (cosine from 3e-4) with the standard rotation/zoom/shift plus one setting, and is scored
through the service's front end on MNIST validation (the split the start was selected on, never trained
on), CVL validation (selection only: never trained on) and Semeion. A continuation is a proxy for a full
run (cheap enough to try every setting on 2 cores); the shipped run then trains with the chosen ones.
Runs already in --runs-dir are reused, so the study resumes after an interruption.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

# name -> extra TrainConfig fields, in the units of the train command's flags
SETTINGS: dict[str, dict] = {
    "baseline (rotation 10, zoom 0.1, shift 0.1)": {},
    "elastic alpha 34 sigma 4": {"elastic_alpha": 34.0, "elastic_sigma": 4.0},
    "elastic alpha 20 sigma 4": {"elastic_alpha": 20.0, "elastic_sigma": 4.0},
    "pen +-1.5 px": {"pen": 1.5},
    "shear +-15 deg": {"shear": 15.0},
    "aspect 1.4x": {"aspect": 0.4},
    "gaps 0.2, specks 0.2": {"gaps": 0.2, "specks": 0.2},
    "styles 0.3 (flagged 1s, crossed 7s; flags 20-55 deg, 25-50% of the height)": {
        "styles": 0.3, "flag_angle": (20.0, 55.0), "flag_length": (0.25, 0.5)},
    "all of the above (elastic 34)": {"elastic_alpha": 34.0, "pen": 1.5, "shear": 15.0, "aspect": 0.4,
                                       "gaps": 0.2, "specks": 0.2, "styles": 0.3, "flag_angle": (20.0, 55.0),
                                       "flag_length": (0.25, 0.5)},
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.split(" (")[0]).strip("-").lower()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="start", default=str(ROOT / "models"), help="model or run folder to continue")
    ap.add_argument("--data-dir", default=os.environ.get("MNIST_DIR") or str(ROOT.parent / "shared/data/mnist"))
    ap.add_argument("--real-dir", default=str(ROOT.parent / "shared/data/real"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--runs-dir", default=str(ROOT / "runs" / "augment"))
    ap.add_argument("--only", nargs="*", default=None, help="names (or slugs) of settings to run")
    ap.add_argument("--out", default=str(ROOT / "docs" / "augmentation-study.md"))
    args = ap.parse_args()

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from model_training.data import load_mnist
    from model_training.scoring import score_run
    from model_training.train import TrainConfig, train

    data = load_mnist(args.data_dir)
    real = Path(args.real_dir)
    cvl_valid = real / "cvl_valid.zip"
    sets = {"CVL valid": cvl_valid, "Semeion": real / "semeion.zip"}
    from model_training.scoring import load_model
    from model_training.train import datasets

    start_model = load_model(Path(args.start))
    _, val_ds, _, _ = datasets(data, TrainConfig(train_limit=None))
    import numpy as np

    hits = [(np.asarray(start_model.predict(xb, verbose=0)).argmax(1) == np.asarray(yb).argmax(1)) for xb, yb in val_ds]
    start_val = float(np.concatenate(hits).mean())
    rows = [{"setting": "start (no further training)", "mnist_val": start_val,
             **{k: v["accuracy"] for k, v in score_run(sets, start_model).items()}}]
    print(json.dumps(rows[-1]), flush=True)
    for name, extra in SETTINGS.items():
        if args.only and name not in args.only and slug(name) not in args.only:
            continue
        run_dir = Path(args.runs_dir) / slug(name)
        if not (run_dir / "summary.json").exists():
            cfg = TrainConfig(epochs=args.epochs, learning_rate=3e-4, min_learning_rate=1e-5, patience=99,
                              init_from=args.start, **extra)
            train(data, cfg, run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        scores = score_run(sets, load_model(run_dir))
        rows.append({"setting": name, "mnist_val": summary["validation_accuracy"],
                     **{k: v["accuracy"] for k, v in scores.items()}})
        print(json.dumps(rows[-1]), flush=True)
    table = ["| setting | MNIST validation | CVL validation | Semeion |", "| --- | --- | --- | --- |"]
    table += [f"| {r['setting']} | {r['mnist_val']:.2%} | {r['CVL valid']:.2%} | {r['Semeion']:.2%} |" for r in rows]
    text = "\n".join(table)
    print(text)
    Path(args.out).write_text(
        "# Augmentation, one setting at a time\n\n"
        f"`python scripts/augmentation_study.py --epochs {args.epochs}`: each row continues the same model "
        f"(`{Path(args.start).name}`) for {args.epochs} epochs (cosine from 3e-4) with rotation +-10 deg, zoom and "
        "shift +-10% plus the setting; accuracy through the service's front end (refused = wrong). CVL "
        "validation chooses settings, it is never trained on.\n\n" + text + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
