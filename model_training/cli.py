"""Command line: python -m model_training train|finetune|swa|soup|export|rollback|evaluate."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path


def _setup_logging(log_file: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=handlers, force=True)


# `replay` (MNIST digits per labelled view) large enough that replay_sample keeps every MNIST training digit
ALL_OF_MNIST = 60_000.0


def _default_real_dir() -> str | None:
    from digitflow.labelled import default_real_dir

    found = default_real_dir()
    return str(found) if found else None


def _default_data_dir() -> str | None:
    return os.environ.get("MNIST_DIR") or None


def _augmentation_args(p: argparse.ArgumentParser, **defaults: float) -> None:
    """The augmentation flags of train and finetune (units in the help); `defaults` overrides some."""
    d = {"rotation": 10.0, "zoom": 0.10, "shift": 0.10, "shear": 0.0, "aspect": 0.0, "elastic_alpha": 0.0, **defaults}
    p.add_argument("--rotation", type=float, default=d["rotation"], help="random rotation, +- degrees")
    p.add_argument("--zoom", type=float, default=d["zoom"], help="random zoom, +- fraction")
    p.add_argument("--shift", type=float, default=d["shift"], help="random translation, +- fraction of width/height")
    p.add_argument("--shear", type=float, default=d["shear"], help="random slant, +- degrees")
    p.add_argument("--aspect", type=float, default=d["aspect"],
                   help="random stretch: width/height times a factor in [1/(1+A), 1+A]")
    p.add_argument("--elastic-alpha", type=float, default=d["elastic_alpha"],
                   help="elastic distortion strength in px (Simard et al. 2003 used 34 with sigma 4; 0: off)")
    p.add_argument("--elastic-sigma", type=float, default=4.0, help="smoothing of the elastic field, px")
    p.add_argument("--pen", type=float, default=0.0, help="random change of stroke width, +- px")
    p.add_argument("--gaps", type=float, default=0.0, help="probability of one or two pen skips per image")
    p.add_argument("--specks", type=float, default=0.0, help="probability of one to three specks per image")
    p.add_argument("--styles", type=float, default=0.0,
                   help="probability that a 1 gets a flag (and maybe a foot), a 7 a cross bar")
    p.add_argument("--flag-angle", type=float, nargs=2, default=[25.0, 55.0], metavar=("LO", "HI"),
                   help="a style-variant 1's flag: degrees below the horizontal")
    p.add_argument("--flag-length", type=float, nargs=2, default=[0.2, 0.45], metavar=("LO", "HI"),
                   help="a style-variant 1's flag: share of the digit's height")


def _holdout_args(p: argparse.ArgumentParser, holdout: float) -> None:
    """How train and finetune split labelled sets for validation."""
    p.add_argument("--holdout", type=float, default=holdout,
                   help="share of the labelled images held out to validate (whole writers where the set names them)")
    p.add_argument("--writer-pattern", default=None, metavar="REGEX",
                   help="group 1 of this regex on a file name names its writer (sets without a writer column)")


def _augmentation_config(args: argparse.Namespace) -> dict:
    """TrainConfig's augmentation fields from the flags of _augmentation_args."""
    return {"rotation_degrees": args.rotation, "zoom": args.zoom, "shift": args.shift, "shear": args.shear,
            "aspect": args.aspect, "elastic_alpha": args.elastic_alpha, "elastic_sigma": args.elastic_sigma,
            "pen": args.pen, "gaps": args.gaps, "specks": args.specks, "styles": args.styles,
            "flag_angle": tuple(args.flag_angle), "flag_length": tuple(args.flag_length)}


def _check_repeat(args: argparse.Namespace) -> None:
    """Refuse --repeat below 1 before any work (train and finetune)."""
    if args.repeat < 1:
        raise SystemExit(f"--repeat must be at least 1, got {args.repeat}")


def cmd_train(args: argparse.Namespace) -> int:
    from model_training.train import TrainConfig, train

    _check_repeat(args)
    run_dir = _run_dir(args)
    cfg = TrainConfig(
        architecture=args.architecture,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        seed=args.seed,
        split_seed=args.split_seed,
        **_augmentation_config(args),
        init_from=args.init_from,
        monitor=args.monitor,
        train_limit=args.limit,
        patience=args.patience,
        patience_from=args.patience_from,
        teachers=args.teacher,
        distill_weight=args.distill_weight,
        temperature=args.temperature,
        ema=args.ema,
        # labelled sets join every MNIST training digit (replay capped at all of them), each image `repeat` times
        labelled=args.labelled, holdout=args.holdout, repeat=args.repeat, replay=ALL_OF_MNIST,
        writer_pattern=args.writer_pattern,
    )
    data = _mnist(args)
    train(data, cfg, run_dir)
    print(f"run folder: {run_dir}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from model_training import distill
    from model_training.train import TrainConfig, train

    _check_repeat(args)
    run_dir = _run_dir(args)
    start = distill.training_config(args.start)  # the start's architecture and validation split
    cfg = TrainConfig(
        architecture=start["architecture"], val_size=start["val_size"], split_seed=start["split_seed"],
        batch_size=start["batch_size"], init_from=args.start, labelled=args.labelled, epochs=args.epochs,
        learning_rate=args.learning_rate, min_learning_rate=min(1e-5, args.learning_rate), patience=args.epochs + 1,
        seed=args.seed, holdout=args.holdout, replay=args.replay, repeat=args.repeat,
        writer_pattern=args.writer_pattern,
        monitor=args.monitor, train_limit=args.limit, ema=args.ema, **_augmentation_config(args),
    )
    if args.distill:  # the starting model's softened answers join the replayed MNIST images' targets
        cfg.teachers, cfg.distill_weight = [args.start], args.distill
    data = _mnist(args)
    train(data, cfg, run_dir)
    if not args.no_wise_ft:
        from model_training import wiseft

        wiseft.apply(run_dir, args.start, data, cfg, args.mnist_tolerance)
    print(f"run folder: {run_dir}")
    return 0


def cmd_soup(args: argparse.Namespace) -> int:
    from model_training.soup import soup

    run_dir = _run_dir(args)
    data = _mnist(args)
    soup(data, [Path(r) for r in args.runs], run_dir, args.weight or None)
    print(f"run folder: {run_dir}")
    return 0


def cmd_swa(args: argparse.Namespace) -> int:
    from model_training.swa import config_for, swa

    run_dir = _run_dir(args)
    cfg = config_for(args.start, args.epochs, args.learning_rate, args.seed)
    data = _mnist(args)
    swa(data, args.start, cfg, run_dir)
    print(f"run folder: {run_dir}")
    return 0


def _run_dir(args: argparse.Namespace) -> Path:
    """The run folder (a new timestamped one, or the one resumed), logging into its train.log."""
    resume = getattr(args, "resume", None)
    run_dir = Path(resume) if resume else Path(args.runs_dir) / time.strftime("%Y%m%d-%H%M%S")
    _setup_logging(run_dir / "train.log")
    return run_dir


def _mnist(args: argparse.Namespace):
    """TensorFlow's threads set (before anything starts it), then MNIST from --data-dir."""
    from model_training.data import load_mnist

    _threads(args.threads)
    return load_mnist(args.data_dir, require_full=not args.allow_subset)


def _threads(n: int) -> None:
    if n:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)


def cmd_export(args: argparse.Namespace) -> int:
    from model_training.export import export_run

    _setup_logging(None)
    card = export_run(Path(args.run), Path(args.model_dir), args.data_dir, compare=args.compare,
                      keep_compared=args.keep_compared, real_dir=Path(args.real_dir) if args.real_dir else None,
                      calibrate_on=args.calibrate_on, flat=args.flat)
    print(f"exported {card['architecture']} version {card['version']}: test accuracy {card['test_accuracy']:.4f}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from model_training.export import rollback

    _setup_logging(None)
    card = rollback(Path(args.model_dir), args.version)
    print(f"serving {card['architecture']} version {card['version']} from {args.model_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from model_training.evaluate import evaluate_shipped

    _setup_logging(None)
    return evaluate_shipped(Path(args.model_dir), args.data_dir)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m model_training", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an architecture into runs/<timestamp>/ (resumable)")
    t.add_argument("--data-dir", default=_default_data_dir(), help="folder of the four MNIST IDX files (env MNIST_DIR); none: keras.datasets")
    t.add_argument("--architecture", default="compact", help="compact (default), wide, seed or tiny")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--learning-rate", type=float, default=1e-3, help="peak of the cosine schedule")
    t.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay (0: plain Adam)")
    t.add_argument("--seed", type=int, default=1234, help="seed of weights, shuffling and augmentation")
    t.add_argument("--split-seed", type=int, default=7, help="seed of the validation split (keep it fixed to compare runs)")
    t.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: all cores)")
    _augmentation_args(t)
    t.add_argument("--init-from", default=None, metavar="FOLDER",
                   help="start from the weights of this run or model folder (same validation split)")
    t.add_argument("--monitor", action="append", default=[], metavar="SET",
                   help="labelled set (ZIP or folder) whose accuracy is logged every epoch (repeatable)")
    t.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (validation accuracy)")
    t.add_argument("--patience-from", type=int, default=0, metavar="EPOCH",
                   help="early stopping counts only epochs after this one (a cosine schedule improves late)")
    t.add_argument("--labelled", action="append", default=[], metavar="SET",
                   help="labelled set (ZIP or folder) trained on beside all of MNIST's training digits (repeatable)")
    _holdout_args(t, holdout=0.25)
    t.add_argument("--repeat", type=int, default=1, metavar="K", help="each labelled training image K times an epoch")
    t.add_argument("--teacher", action="append", default=[], metavar="FOLDER",
                   help="distil from this run folder or model folder (repeat for an ensemble; same validation split)")
    t.add_argument("--distill-weight", type=float, default=0.4, help="share of the teachers' soft target, below 0.5")
    t.add_argument("--temperature", type=float, default=4.0, help="softening of the teachers' probabilities")
    t.add_argument("--ema", type=float, default=0.0, metavar="MOMENTUM",
                   help="validate and checkpoint an exponential moving average of the weights (e.g. 0.999; 0: off)")
    t.add_argument("--limit", type=int, default=None, help="train on the first N images only (smoke runs)")
    t.add_argument("--runs-dir", default="runs")
    t.add_argument("--allow-subset", action="store_true", help="accept IDX files with fewer than 60k/10k images (tests)")
    t.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")
    t.set_defaults(func=cmd_train)

    f = sub.add_parser("finetune", help="continue a model or run on labelled sets, replaying MNIST (run folder)")
    f.add_argument("start", help="model folder (model.keras + card) or run folder (best.keras) to continue")
    f.add_argument("--labelled", action="append", required=True, metavar="SET",
                   help="labelled set: ZIP or folder with images and labels.csv (filename,label[,writer]); repeatable")
    f.add_argument("--data-dir", default=_default_data_dir(), help="folder of the four MNIST IDX files (env MNIST_DIR)")
    f.add_argument("--epochs", type=int, default=4)
    f.add_argument("--learning-rate", type=float, default=3e-4, help="peak of the cosine schedule (low: keep MNIST)")
    _holdout_args(f, holdout=0.1)
    f.add_argument("--replay", type=float, default=2.0,
                   help="MNIST training images replayed per labelled image (per view with --repeat; at most all of them)")
    f.add_argument("--repeat", type=int, default=1, metavar="K",
                   help="show each labelled training image K times an epoch, freshly augmented each time (a small "
                        "set beside all of MNIST: --replay high enough to replay every MNIST training image)")
    f.add_argument("--distill", type=float, default=0.0, metavar="WEIGHT",
                   help="mix the starting model's softened probabilities into the replayed MNIST images' "
                        "targets with this weight (below 0.5; 0: off): it keeps what the start knew about MNIST")
    f.add_argument("--monitor", action="append", default=[], metavar="SET", help="labelled set scored every epoch")
    f.add_argument("--ema", type=float, default=0.0, metavar="MOMENTUM",
                   help="validate and checkpoint an exponential moving average of the weights (0: off)")
    # elastic distortion and slant on the replayed MNIST (and the labelled images) keep MNIST better than
    # the plain default: docs/finetune.md, runs G1/G2
    _augmentation_args(f, elastic_alpha=34.0, shear=10.0)
    f.add_argument("--mnist-tolerance", type=float, default=0.05, metavar="PP",
                   help="WiSE-FT: average with the start at the share of fine-tuned weights that is best on the "
                        "held-out labelled share while MNIST validation stays within PP points of the start's")
    f.add_argument("--no-wise-ft", action="store_true", help="keep the fine-tuned checkpoint as it is")
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: all cores)")
    f.add_argument("--limit", type=int, default=None, help="replay at most N MNIST images (smoke runs)")
    f.add_argument("--runs-dir", default="runs")
    f.add_argument("--allow-subset", action="store_true", help="accept IDX files with fewer than 60k/10k images (tests)")
    f.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted fine-tuning")
    f.set_defaults(func=cmd_finetune)

    u = sub.add_parser("soup", help="average the weights of runs continued from one start (a new run folder)")
    u.add_argument("runs", nargs="+", help="run folders (best.keras) trained from the same start and split")
    u.add_argument("--weight", type=float, action="append", default=[], help="one per run, in order (default equal)")
    u.add_argument("--data-dir", default=_default_data_dir(), help="folder of the four MNIST IDX files (env MNIST_DIR)")
    u.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: all cores)")
    u.add_argument("--runs-dir", default="runs")
    u.add_argument("--allow-subset", action="store_true", help="accept IDX files with fewer than 60k/10k images (tests)")
    u.set_defaults(func=cmd_soup)

    s = sub.add_parser("swa", help="stochastic weight averaging: continue a trained run or model, average its weights")
    s.add_argument("start", help="run folder (best.keras) or model folder (model.keras) to continue from")
    s.add_argument("--data-dir", default=_default_data_dir(), help="folder of the four MNIST IDX files (env MNIST_DIR)")
    s.add_argument("--epochs", type=int, default=10, help="epochs averaged (one weight snapshot per epoch)")
    s.add_argument("--learning-rate", type=float, default=5e-4, help="constant learning rate of the SWA phase")
    s.add_argument("--seed", type=int, default=1, help="seed of shuffling and augmentation")
    s.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: all cores)")
    s.add_argument("--runs-dir", default="runs")
    s.add_argument("--allow-subset", action="store_true", help="accept IDX files with fewer than 60k/10k images (tests)")
    s.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted SWA run")
    s.set_defaults(func=cmd_swa)

    e = sub.add_parser("export", help="evaluate a run on the test split and promote it into MODEL_DIR")
    e.add_argument("run", help="run folder written by train")
    e.add_argument("--model-dir", default=os.environ.get("MODEL_DIR", "models"))
    e.add_argument("--data-dir", default=_default_data_dir())
    e.add_argument("--compare", nargs="*", default=[], metavar="RUN",
                   help="other runs (the seed architecture, other candidates) to list beside it in the report")
    e.add_argument("--real-dir", default=_default_real_dir(),
                   help="folder of labelled real sets scored in the card and report (env REAL_DATA_DIR; "
                        "default ../shared/data/real when present)")
    e.add_argument("--calibrate-on", default="cvl_valid", metavar="SET",
                   help="labelled set the temperature is fitted on (absent: the run's MNIST validation split)")
    e.add_argument("--flat", action="store_true",
                   help="write the files at MODEL_DIR's top (the repository's shipped model) instead of "
                        "versions/<version>/ with an atomically switched `current` pointer")
    e.add_argument("--keep-compared", action="store_true",
                   help="also list the model being replaced and the runs its card compared with")
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("rollback", help="switch a live MODEL_DIR back to an earlier version (running workers follow)")
    r.add_argument("version", help="a folder name under MODEL_DIR/versions")
    r.add_argument("--model-dir", default=os.environ.get("MODEL_DIR", "models"))
    r.set_defaults(func=cmd_rollback)

    v = sub.add_parser("evaluate", help="accuracy of the shipped model and throughput of both architectures")
    v.add_argument("--model-dir", default=os.environ.get("MODEL_DIR", "models"))
    v.add_argument("--data-dir", default=_default_data_dir())
    v.set_defaults(func=cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)
