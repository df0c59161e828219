"""Train one architecture with augmentation, a cosine schedule, early stopping and checkpoints."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from digitflow.frontend import to_digit
from digitflow.frontend.errors import NoDigitFound
from model_training import distill, finetune
from model_training.architectures import build, count_macs
from model_training.augment import Augmentation, augment_batch
from model_training.data import Mnist, one_hot, stratified_split, to_model_input

log = logging.getLogger("model_training")


@dataclass
class TrainConfig:
    architecture: str = "compact"
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-5
    weight_decay: float = 0.0  # decoupled (AdamW) when > 0
    val_size: int = 5000
    patience: int = 10
    patience_from: int = 0  # epochs before early stopping starts counting (Keras' start_from_epoch)
    seed: int = 1234  # weights, shuffling and augmentation
    split_seed: int = 7  # which 5k images validate: fixed, so runs with different seeds compare on one split
    rotation_degrees: float = 10.0  # +-degrees
    zoom: float = 0.10  # +-fraction of the image size (after the front end's fitting)
    shift: float = 0.10  # +-fraction of the image size, both axes (after fitting)
    shear: float = 0.0  # +-degrees of slant
    aspect: float = 0.0  # width/height changed by a factor up to 1+aspect either way
    elastic_alpha: float = 0.0  # px, Simard et al.'s alpha (0: off)
    elastic_sigma: float = 4.0  # px, smoothing of the elastic field
    pen: float = 0.0  # +-px of stroke width
    gaps: float = 0.0  # probability of pen skips
    specks: float = 0.0  # probability of specks near the digit
    styles: float = 0.0  # probability of a flagged/footed 1 or a crossed 7
    flag_angle: tuple[float, float] = (25.0, 55.0)  # degrees below the horizontal of a 1's flag
    flag_length: tuple[float, float] = (0.2, 0.45)  # share of the digit's height
    init_from: str | None = None  # start from this run/model folder's weights (same validation split)
    monitor: list[str] = field(default_factory=list)  # labelled sets whose accuracy is logged every epoch
    labelled: list[str] = field(default_factory=list)  # labelled sets trained on (fine-tuning; finetune.py)
    holdout: float = 0.2  # share of the labelled images (whole writers where known) held out to validate
    replay: float = 1.0  # MNIST training images replayed per labelled image (per view, with repeat)
    repeat: int = 1  # each labelled training image appears this many times an epoch (augmented afresh)
    writer_pattern: str | None = None  # regex whose group 1 names the writer in a labelled file name
    train_limit: int | None = None  # use only the first N training images (smoke tests)
    teachers: list[str] = field(default_factory=list)  # distil from these runs/model folders (distill.py)
    distill_weight: float = 0.4  # share of the teachers' soft target in each training target
    temperature: float = 4.0  # softens the teachers' probabilities
    ema: float = 0.0  # momentum of an exponential moving average of the weights (0: off); validated and saved


def augmentation(cfg: TrainConfig) -> Augmentation:
    return Augmentation(
        rotation=cfg.rotation_degrees, zoom=cfg.zoom, shift=cfg.shift, shear=cfg.shear, aspect=cfg.aspect,
        elastic_alpha=cfg.elastic_alpha, elastic_sigma=cfg.elastic_sigma, pen=cfg.pen, gaps=cfg.gaps,
        specks=cfg.specks, styles=cfg.styles, flag_angle=tuple(cfg.flag_angle), flag_length=tuple(cfg.flag_length),
    )


def serving_digits(x: np.ndarray) -> np.ndarray:
    """MNIST images as the service's front end hands them to the model (train and serve agree).

    Most pass unchanged (already in model format); the rest are re-fitted. An image the front end
    would refuse (none in MNIST's training split, measured) is kept as it is.
    """
    out = np.empty_like(x)
    for i, img in enumerate(x):
        try:
            out[i] = to_digit(img, ink_high=True)
        except NoDigitFound:
            out[i] = img
    return out


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled, freshly augmented batches every epoch (OpenCV in two threads beside TensorFlow)."""

    def __init__(self, digits: np.ndarray, labels: np.ndarray, targets: np.ndarray, cfg: TrainConfig):
        super().__init__(workers=2, use_multiprocessing=False, max_queue_size=16)
        self.digits, self.labels, self.targets = digits, labels, targets
        self.batch, self.seed, self.aug = cfg.batch_size, cfg.seed, augmentation(cfg)
        self.epoch = 0
        self.order = np.random.default_rng((self.seed, 0)).permutation(len(labels))

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch)

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch : (i + 1) * self.batch]
        rng = np.random.default_rng((self.seed, self.epoch, i))
        return augment_batch(self.digits[idx], self.labels[idx], self.aug, rng), self.targets[idx]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.labels))


def cosine_schedule(cfg: TrainConfig):
    """Learning rate per epoch: cosine from learning_rate down to min_learning_rate."""

    def lr(epoch: int, _current: float = 0.0) -> float:
        progress = min(epoch / max(cfg.epochs - 1, 1), 1.0)
        return cfg.min_learning_rate + 0.5 * (cfg.learning_rate - cfg.min_learning_rate) * (
            1 + math.cos(math.pi * progress)
        )

    return lr


def training_targets(x: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """One-hot labels, or (with teachers) labels mixed with the teachers' softened probabilities."""
    if not cfg.teachers:
        return one_hot(y)
    models = []
    for path in cfg.teachers:
        model, teacher_cfg = distill.load_teacher(path)
        distill.check_split(path, teacher_cfg, cfg.split_seed, cfg.val_size)
        models.append(model)
    soft = distill.soft_targets(models, x, cfg.temperature)
    agree = float((soft.argmax(1) == y).mean())
    log.info("distilling from %d teacher(s), T=%.1f, weight %.2f; teachers agree with %.4f of the training labels",
             len(models), cfg.temperature, cfg.distill_weight, agree)
    return distill.mixed_targets(y, soft, cfg.distill_weight)


def optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam, or AdamW with decoupled weight decay; optionally keeping an EMA of the weights (Polyak averaging)."""
    if not 0.0 <= cfg.ema < 1.0:
        raise ValueError(f"ema momentum must be in [0, 1), got {cfg.ema}")
    ema = {"use_ema": True, "ema_momentum": cfg.ema} if cfg.ema else {}
    if cfg.weight_decay:
        return keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay, **ema)
    return keras.optimizers.Adam(cfg.learning_rate, **ema)


def split_indices(y: np.ndarray, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation indices of MNIST's training split (cut to `train_limit` in smoke runs)."""
    val_size = min(cfg.val_size, len(y) // 10)  # small data sets (tests) keep 90% for training
    train_idx, val_idx = stratified_split(y, val_size, cfg.split_seed)
    if cfg.train_limit:
        train_idx = train_idx[: cfg.train_limit]
        val_idx = val_idx[: max(cfg.train_limit // 10, 100)]
    return train_idx, val_idx


def datasets(data: Mnist, cfg: TrainConfig):
    """The augmented training batches and the plain validation split (one-hot targets), both as the
    front end gives them. With labelled sets (fine-tuning), their training share joins a replayed
    sample of MNIST and their held-out share joins MNIST validation; `train.held_out` keeps it apart."""
    train_idx, val_idx = split_indices(data.y_train, cfg)
    lab = finetune.load_labelled(cfg.labelled, cfg.holdout, cfg.split_seed, cfg.writer_pattern) if cfg.labelled else None
    if lab is not None:
        train_idx = finetune.replay_sample(train_idx, cfg.repeat * len(lab.y_train), cfg.replay, cfg.seed)
    digits = serving_digits(data.x_train[np.concatenate([train_idx, val_idx])])
    x_train, x_val = digits[: len(train_idx)], digits[len(train_idx) :]
    y_train, y_val = data.y_train[train_idx].astype(np.int64), data.y_train[val_idx].astype(np.int64)
    targets = training_targets(to_model_input(x_train), y_train, cfg)
    if lab is not None:  # teachers (the start, in fine-tuning) soften only MNIST's targets: on the new
        # writers the start is what is being corrected
        x_lab, y_lab = np.tile(lab.x_train, (cfg.repeat, 1, 1)), np.tile(lab.y_train, cfg.repeat)
        x_train, y_train = np.concatenate([x_train, x_lab]), np.concatenate([y_train, y_lab])
        x_val, y_val = np.concatenate([x_val, lab.x_held]), np.concatenate([y_val, lab.y_held])
        targets = np.concatenate([targets, one_hot(y_lab)])
    train = AugmentedBatches(x_train, y_train, targets, cfg)
    train.labelled = lab.sets if lab is not None else []
    train.held_out = {"held_out": (to_model_input(lab.x_held), lab.y_held, np.zeros(len(lab.y_held), bool)),
                      "mnist_val": (to_model_input(x_val[: len(val_idx)]), y_val[: len(val_idx)],
                                    np.zeros(len(val_idx), bool))} if lab is not None and len(lab.y_held) else {}
    val = tf.data.Dataset.from_tensor_slices((to_model_input(x_val), one_hot(y_val))).batch(512)
    return train, val, len(y_train), len(y_val)


class MonitorSets(keras.callbacks.Callback):
    """Accuracy on other sets (labelled real sets through the front end, a fine-tuning's held-out share;
    refused counts as wrong) added to each epoch's logs as `<name>_accuracy`, so history.csv shows them
    beside the validation accuracy. sets: name -> (model input, labels, refused)."""

    def __init__(self, sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]):
        super().__init__()
        self.sets = sets

    @classmethod
    def of_files(cls, paths: list[str]) -> dict:
        from model_training.scoring import set_digits

        return {Path(p).stem if not Path(p).is_dir() else Path(p).name: set_digits(str(p)) for p in paths}

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for name, (x, y, refused) in self.sets.items():
            pred = np.asarray(self.model.predict(x, batch_size=1000, verbose=0)).argmax(1)
            logs[f"{name}_accuracy"] = float(((pred == y) & ~refused).mean())


class EpochLog(keras.callbacks.Callback):
    """One readable log line per epoch (progress output for nohup runs)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        log.info(
            "epoch %d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f lr %.2e (%.0f s)",
            epoch + 1,
            logs.get("loss", float("nan")),
            logs.get("accuracy", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("val_accuracy", float("nan")),
            float(self.model.optimizer.learning_rate),
            time.time() - self.t0,
        )
        monitored = {k: v for k, v in logs.items() if k.endswith("_accuracy") and k not in ("accuracy", "val_accuracy")}
        if monitored:
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in monitored.items()))


def better(candidate: tuple[float, float], best: tuple[float, float] | None) -> bool:
    """(val_accuracy, val_loss): higher accuracy wins; at equal accuracy, the lower loss."""
    return best is None or candidate[0] > best[0] or (candidate[0] == best[0] and candidate[1] < best[1])


class BestOnValidation(keras.callbacks.Callback):
    """Best checkpoint and early stopping on validation accuracy, ties broken by validation loss.

    Validation accuracy moves in steps of one image (0.0002 on 5,000): a later, more annealed epoch
    can reach the same accuracy at a lower loss, and Keras' ModelCheckpoint/EarlyStopping (which
    count only a strictly higher value) would keep the earlier one. The state lives in best.json next
    to the checkpoint, so a resumed run keeps its best and its patience count.
    """

    def __init__(self, run_dir: Path, patience: int, patience_from: int = 0):
        super().__init__()
        self.path, self.state_file, self.patience = run_dir / "best.keras", run_dir / "best.json", patience
        self.patience_from = patience_from
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        self.best = tuple(state["best"]) if state.get("best") else None
        self.wait = state.get("wait", 0)
        self.best_epoch = state.get("epoch")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = (float(logs["val_accuracy"]), float(logs["val_loss"]))
        if better(current, self.best):
            self.best, self.wait, self.best_epoch = current, 0, epoch + 1
            self.model.save(self.path)
        elif epoch + 1 > self.patience_from:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True
                log.info("early stop: no better validation result for %d epochs", self.wait)
        self.state_file.write_text(json.dumps({"best": list(self.best), "wait": self.wait, "epoch": self.best_epoch}))


def initial_model(cfg: TrainConfig) -> keras.Model:
    """A fresh architecture, or the weights of cfg.init_from (which must share the validation split)."""
    if not cfg.init_from:
        return build(cfg.architecture)
    start, start_cfg = distill.load_teacher(cfg.init_from)
    distill.check_split(cfg.init_from, start_cfg, cfg.split_seed, cfg.val_size)
    if start.name != cfg.architecture:
        raise ValueError(f"{cfg.init_from} is a {start.name} model, not {cfg.architecture}")
    model = build(cfg.architecture)
    model.set_weights(start.get_weights())
    return model


def train(data: Mnist, cfg: TrainConfig, run_dir: Path) -> dict:
    """Train into run_dir (resumes if run_dir holds a backup); returns a summary dict."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    keras.utils.set_random_seed(cfg.seed)
    train_ds, val_ds, n_train, n_val = datasets(data, cfg)
    model = initial_model(cfg)
    model.compile(
        optimizer=optimizer(cfg),
        loss="categorical_crossentropy",
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    log.info(
        "training %s (%d params, %.1f M MAC) on %d images, validating on %d, up to %d epochs",
        cfg.architecture, model.count_params(), count_macs(model) / 1e6, n_train, n_val, cfg.epochs,
    )
    teachers = [distill.describe(t) for t in cfg.teachers]  # now: a model folder may be replaced during training
    parent = distill.describe(cfg.init_from) if cfg.init_from else None
    best_on_val = BestOnValidation(run_dir, cfg.patience, cfg.patience_from)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),  # resumable; backs up the raw weights
        keras.callbacks.LearningRateScheduler(cosine_schedule(cfg)),
        # With an EMA, validation and the best checkpoint see the averaged weights (swapped in at each
        # epoch's end, back out at the next one's start): listed before best_on_val, after the backup.
        *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema else []),
        # before the CSV log, which records its figures
        *([MonitorSets({**train_ds.held_out, **MonitorSets.of_files(cfg.monitor)})]
          if cfg.monitor or train_ds.held_out else []),
        best_on_val,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        EpochLog(),
    ]
    started = time.time()
    model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=callbacks, verbose=0)
    seconds = time.time() - started
    summary = {
        **best_checkpoint(run_dir, val_ds, cfg.architecture),
        "epochs": _epochs_run(run_dir),
        "best_epoch": best_on_val.best_epoch,
        "training_seconds": total_seconds(run_dir, seconds),
        "data_sha256": data.sha256,
        "config": asdict(cfg),
        "teachers": teachers,
        "init_from": parent,
        "labelled": train_ds.labelled,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("best validation accuracy %.4f; summary in %s", summary["validation_accuracy"], run_dir / "summary.json")
    return summary


def best_checkpoint(run_dir: Path, val_ds, architecture: str) -> dict:
    """The size and validation result of run_dir/best.keras (the head of a run summary)."""
    best = keras.models.load_model(run_dir / "best.keras")
    val_loss, val_acc = best.evaluate(val_ds, verbose=0)
    return {
        "architecture": architecture,
        "parameters": int(best.count_params()),
        "macs_per_image": count_macs(best),
        "validation_accuracy": float(val_acc),
        "validation_loss": float(val_loss),
    }


def _epochs_run(run_dir: Path) -> int:
    lines = (run_dir / "history.csv").read_text().strip().splitlines()
    return len({line.split(",")[0] for line in lines[1:]})


def total_seconds(run_dir: Path, this_session: float) -> float:
    """Wall time summed over every (resumed) session of the run."""
    ledger = run_dir / "seconds.json"
    spent = json.loads(ledger.read_text()) if ledger.exists() else []
    spent.append(round(this_session, 1))
    ledger.write_text(json.dumps(spent))
    return float(sum(spent))
