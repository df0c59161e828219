"""Report only: accuracy along a fine-tuning's WiSE-FT line (start -> fine-tuned), on the MNIST test split and
labelled real sets. `finetune` chose its share on validation; this shows what the other sets say about the line.

    python scripts/wiseft_line.py RUN_DIR [--start models] [--set ../shared/data/real/cvl_valid.zip ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from model_training import distill, finetune  # noqa: E402
from model_training.data import load_mnist, to_model_input  # noqa: E402
from model_training.scoring import score, set_digits  # noqa: E402
from model_training.train import TrainConfig, serving_digits  # noqa: E402
from model_training.wiseft import SHARES, TUNED, bn_sample, set_mix  # noqa: E402


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, refused: np.ndarray | None = None) -> float:
    refused = np.zeros(len(y), bool) if refused is None else refused
    return score(np.asarray(model.predict(x, batch_size=1000, verbose=0)), y, refused)["accuracy"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finetune run folder (with tuned.keras)")
    ap.add_argument("--start", default=str(ROOT / "models"), help="the model it started from")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--set", action="append", default=[], help="labelled set to score (repeatable)")
    args = ap.parse_args()
    saved = json.loads((args.run / "config.json").read_text())
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__})
    data = load_mnist(args.data_dir)
    bn = bn_sample(data, cfg, finetune.load_labelled(cfg.labelled, cfg.holdout, cfg.split_seed, cfg.writer_pattern))
    start, _ = distill.load_teacher(args.start)
    model = keras.models.load_model(args.run / TUNED)
    tuned = model.get_weights()
    x_test, y_test = to_model_input(serving_digits(data.x_test)), data.y_test
    sets = {Path(p).stem: set_digits(p) for p in args.set}
    print("| share | MNIST test | " + " | ".join(sets) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in sets) + " |")
    start_weights = start.get_weights()
    line = ((share, set_mix(model, start_weights, tuned, share, bn)) for share in SHARES)  # lazy: one model, re-mixed
    for name, m in itertools.chain([("start", start)], line):
        print(f"| {name} | {accuracy(m, x_test, y_test):.2%} | "
              + " | ".join(f"{accuracy(m, *v):.2%}" for v in sets.values()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
