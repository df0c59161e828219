"""Fit an ink map the way MNIST was made: thin strokes thickened, 20x20 box (aspect kept), mass centred in 28x28."""

from __future__ import annotations

import cv2
import numpy as np

BOX = 20  # MNIST fits each digit into 20x20 ...
SIZE = 28  # ... and centres its mass in 28x28
CENTRE = 14.0  # mean centre of mass of MNIST test digits, in pixel indices (measured: 13.99, 14.01)
MIN_STROKE = 1.8  # px at 20x20 scale: the median MNIST stroke (10th-90th percentile 1.4-2.7) ...
MAX_STROKE = 3.6  # ... and marker strokes wider than this are eroded ...
MNIST_WIDE = 2.7  # ... to the width of MNIST's widest tenth


def crop(ink: np.ndarray) -> np.ndarray | None:
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def mean_stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary shape: twice its area over its perimeter (pixel edges)."""
    mask = mask.astype(bool, copy=False)
    inner = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    border = np.count_nonzero(mask[[0, -1]]) + np.count_nonzero(mask[:, [0, -1]])  # edges on the frame
    return 2.0 * float(np.count_nonzero(mask)) / max(inner + border, 1)


def thicken(patch: np.ndarray) -> np.ndarray:
    """Dilate strokes that would be thinner than MNIST's once the digit is scaled to fit 20x20."""
    scale = BOX / max(patch.shape)
    if scale >= 1:  # never thinner than drawn
        return patch
    width_after = mean_stroke_width(patch > 0.5) * scale
    if width_after >= MIN_STROKE:
        return patch
    size = min(2 * int(round((MIN_STROKE - width_after) / scale / 2)) + 1, 15)
    if size < 3:
        return patch
    grown = cv2.dilate(np.pad(patch, size // 2), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return crop(grown)


def thin(patch: np.ndarray) -> np.ndarray:
    """Erode marker strokes that would be far bolder than MNIST's once scaled to 20x20 (never to nothing)."""
    scale = BOX / max(patch.shape)
    width_after = mean_stroke_width(patch > 0.5) * scale
    if width_after <= MAX_STROKE:
        return patch
    size = 2 * int(round((width_after - MNIST_WIDE) / scale / 2)) + 1
    if size < 3:
        return patch
    eroded = cv2.erode(patch, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    if (eroded > 0.5).sum() < 0.25 * (patch > 0.5).sum():
        return patch
    return crop(eroded) if eroded.any() else patch


def fit(ink: np.ndarray) -> np.ndarray | None:
    """Ink in [0,1] -> uint8 [28,28] as MNIST: cropped, fitted to 20x20, centred by mass. None if no ink."""
    patch = crop(ink.astype(np.float32))
    if patch is None:
        return None
    if max(patch.shape) > 4 * BOX:  # shrink large drawings by area first; faint thin strokes re-strengthened
        f = 4 * BOX / max(patch.shape)
        size = (max(1, round(patch.shape[1] * f)), max(1, round(patch.shape[0] * f)))
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
        patch = np.clip(patch / max(float(patch.max()), 1e-6) * 1.5, 0.0, 1.0)
        patch[patch < 0.05] = 0.0
        patch = crop(patch)
    patch = thin(thicken(patch))
    h, w = patch.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = np.clip(cv2.resize(patch, (new_w, new_h), interpolation=method), 0.0, None)
    if small.max() <= 0:
        return None
    small = small * (255.0 / small.max())
    total = small.sum()
    ci = float(small.sum(axis=1) @ np.arange(new_h)) / total
    cj = float(small.sum(axis=0) @ np.arange(new_w)) / total
    top = int(np.clip(round(CENTRE - ci), 0, SIZE - new_h))
    left = int(np.clip(round(CENTRE - cj), 0, SIZE - new_w))
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = small
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
