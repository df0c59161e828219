"""The evaluation report: plots (training curves, confusion matrix, misclassified digits) and README."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def training_curves(history_csv: Path, out: Path) -> None:
    rows = list(csv.DictReader(history_csv.open()))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("accuracy", "train"), ("val_accuracy", "validation")):
        axes[0].plot(epochs, [float(r[key]) for r in rows], label=label)
    axes[0].set(title="accuracy", xlabel="epoch", ylim=(0.97, 1.0))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        axes[1].plot(epochs, [float(r[key]) for r in rows], label=label)
    axes[1].set(title="loss", xlabel="epoch", yscale="log")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def confusion_plot(matrix: list[list[int]], out: Path) -> None:
    m = np.array(matrix)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.imshow(np.log1p(m), cmap="Blues")
    for i in range(10):
        for j in range(10):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if i == j else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true", title="confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def misclassified_grid(x: np.ndarray, y: np.ndarray, pred: np.ndarray, out: Path, limit: int = 80) -> None:
    wrong = np.flatnonzero(pred != y)[:limit]
    cols = 10
    rows = max(1, (len(wrong) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        ax.imshow(x[i], cmap="gray_r")
        ax.set_title(f"#{i} {y[i]}→{pred[i]}", fontsize=7)
    fig.suptitle("misclassified test digits: index, true → predicted", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
