"""Augmentation of real handwriting variation, in OpenCV, ending in the service's own fitting step.

Each training image is drawn on a canvas at twice MNIST's scale and, in this order:
  style variant (a 1 given a flag and a foot, a 7 crossed) -> one affine warp (rotation, slant/shear,
  aspect) -> elastic distortion (Simard, Steinkraus & Platt 2003: a random displacement field smoothed
  by a Gaussian of sigma, scaled by alpha) -> pen width (the stroke edge moved along its signed
  distance: thinner and thicker pens; always redrawn with a crisp edge) -> pen skips (small gaps) -> the front end's `fit` (20x20 box,
  aspect kept, thin/thick strokes brought to MNIST's range, centred by mass: what serving does to every
  upload that is not already in model format) -> residual zoom and shift (what a front end leaves,
  e.g. a kept speck moving the centre) -> specks.

Units (all at MNIST's 28x28 scale): degrees, pixels, fractions and probabilities as named in
`Augmentation`. Every random draw comes from a NumPy Generator, so a (seed, epoch, batch) triple
gives the same batch again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from digitflow.frontend.fitting import fit, mean_stroke_width

SCALE = 2  # working canvas: twice MNIST's resolution, so thin pens and gaps are not quantised to 1 px
CANVAS = 28 * SCALE + 16  # room for rotated, sheared and stretched digits
FIELDS = 256  # elastic displacement fields drawn once per (alpha, sigma); each use flips and transposes one
_GRID = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)
_fields: dict[tuple[float, float], np.ndarray] = {}


@dataclass
class Augmentation:
    rotation: float = 10.0  # +- degrees
    zoom: float = 0.10  # +- fraction, after fitting
    shift: float = 0.10  # +- fraction of the image, after fitting (both axes)
    shear: float = 0.0  # +- degrees of slant (x moves with y)
    aspect: float = 0.0  # width/height scaled by a factor in [1/(1+a), 1+a], log-uniform
    elastic_alpha: float = 0.0  # px of displacement scale (Simard et al.: 34 with sigma 4); 0: off
    elastic_sigma: float = 4.0  # px, smoothing of the displacement field
    pen: float = 0.0  # +- px of stroke width (both edges move by half of it)
    gaps: float = 0.0  # probability of one or two pen skips (a disc of ink erased on the stroke)
    specks: float = 0.0  # probability of one to three specks of ink near the digit
    styles: float = 0.0  # probability that a 1 gets a flag (and maybe a foot) or a 7 a cross bar
    flag_angle: tuple[float, float] = (25.0, 55.0)  # degrees below the horizontal of a 1's flag
    flag_length: tuple[float, float] = (0.2, 0.45)  # a 1's flag, as a share of the digit's height



def _ink_box(img: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(img.max(axis=1) > 0.3), np.flatnonzero(img.max(axis=0) > 0.3)
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _stroke_px(img: np.ndarray) -> int:
    """Stroke width of the digit on the canvas (the front end's measure: twice area over perimeter)."""
    return max(2, int(round(mean_stroke_width(img > 0.5))))


def style_variant(img: np.ndarray, label: int, rng: np.random.Generator, flag_angle=(25.0, 55.0),
                  flag_length=(0.2, 0.45)) -> np.ndarray:
    """Continental styles MNIST rarely holds: a 1 with a long flag (and sometimes a foot), a crossed 7."""
    box = _ink_box(img)
    if box is None or label not in (1, 7):
        return img
    top, bottom, left, right = box
    h, width = bottom - top + 1, _stroke_px(img)
    out = img.copy()
    if label == 1:
        cols = np.flatnonzero(img[top : top + max(2, h // 10)].max(axis=0) > 0.3)
        x0, y0 = int(cols.mean()), top
        # Measured in continuations of the shipped model (scripts/augmentation_study.py, docs/augmentation.md):
        # flatter, longer flags help CVL's 1s and cost MNIST 7s (read as 1s); the range is a flag each.
        length = h * rng.uniform(*flag_length)
        angle = math.radians(rng.uniform(*flag_angle))  # below the horizontal, going left
        end = (int(round(x0 - length * math.cos(angle))), int(round(y0 + length * math.sin(angle))))
        cv2.line(out, (x0, y0), end, 1.0, width, cv2.LINE_AA)
        if rng.random() < 0.3:  # a foot
            cols = np.flatnonzero(img[bottom - max(2, h // 10) : bottom + 1].max(axis=0) > 0.3)
            xb, half = int(cols.mean()), int(round(h * rng.uniform(0.15, 0.25)))
            cv2.line(out, (xb - half, bottom), (xb + half, bottom), 1.0, width, cv2.LINE_AA)
    else:
        y = int(round(top + h * rng.uniform(0.45, 0.6)))
        cols = np.flatnonzero(img[y] > 0.3)
        if cols.size == 0:
            return img
        xc, half = int(cols.mean()), int(round((right - left + 1) * rng.uniform(0.2, 0.35)))
        cv2.line(out, (xc - half, y), (xc + half, y), 1.0, width, cv2.LINE_AA)
    return np.clip(out, 0.0, 1.0)


def affine(img: np.ndarray, cfg: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """One warp about the canvas centre: rotation, shear (slant) and aspect."""
    theta = math.radians(rng.uniform(-cfg.rotation, cfg.rotation)) if cfg.rotation else 0.0
    shear = math.tan(math.radians(rng.uniform(-cfg.shear, cfg.shear))) if cfg.shear else 0.0
    stretch = math.exp(rng.uniform(-1, 1) * math.log1p(cfg.aspect)) if cfg.aspect else 1.0
    sx, sy = math.sqrt(stretch), 1.0 / math.sqrt(stretch)  # area kept; fitting rescales anyway
    c, s = math.cos(theta), math.sin(theta)
    m = np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sx, sy])
    centre = np.array([CANVAS / 2, CANVAS / 2])
    t = centre - m @ centre
    return cv2.warpAffine(img, np.hstack([m, t[:, None]]).astype(np.float32), (CANVAS, CANVAS),
                          flags=cv2.INTER_LINEAR, borderValue=0.0)


def _field_bank(alpha: float, sigma: float) -> np.ndarray:
    """FIELDS smoothed random displacement fields [FIELDS, CANVAS, CANVAS] (drawn once, seeded)."""
    key = (alpha, sigma)
    if key not in _fields:
        rng = np.random.default_rng(20031)
        bank = rng.uniform(-1, 1, (FIELDS, CANVAS, CANVAS)).astype(np.float32)
        for i in range(FIELDS):
            bank[i] = cv2.GaussianBlur(bank[i], (0, 0), sigma * SCALE) * (alpha * SCALE)
        _fields[key] = bank
    return _fields[key]


def elastic(img: np.ndarray, alpha: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Simard et al.'s elastic distortion (alpha and sigma in MNIST pixels): two independent smoothed
    uniform fields, taken from a bank with a random flip, transpose and sign so no two draws repeat."""
    bank = _field_bank(alpha, sigma)
    i, j = rng.integers(FIELDS, size=2)
    flips = rng.integers(0, 2, size=4)
    dx, dy = bank[i], bank[j]
    if flips[0]:
        dx = dx[::-1]
    if flips[1]:
        dy = dy[:, ::-1]
    if flips[2]:
        dx, dy = dx.T, dy.T
    sign = -1.0 if flips[3] else 1.0
    yy, xx = _GRID
    return cv2.remap(img, xx + sign * dx, yy + sign * dy, cv2.INTER_LINEAR, borderValue=0.0)


def pen_width(img: np.ndarray, change: float) -> np.ndarray:
    """Move the stroke edge by change/2 MNIST px along its signed distance (negative: thinner, never gone)."""
    mask = (img > 0.5).astype(np.uint8)
    if not mask.any():
        return img
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3)
    signed = inside - outside  # > 0 within the stroke
    half_width = 2.0 * float(inside[mask > 0].mean())  # mean distance inside a stroke is about a quarter of its width
    offset = change * SCALE / 2
    offset = max(offset, -0.6 * half_width)  # a thin pen still leaves a stroke
    return np.clip(signed + offset + 0.5, 0.0, 1.0).astype(np.float32)


def gaps(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One or two pen skips: a disc about a stroke wide erased at a random point of the stroke."""
    ys, xs = np.nonzero(img > 0.5)
    if ys.size == 0:
        return img
    out = img.copy()
    radius = max(1, int(round(_stroke_px(img) * rng.uniform(0.5, 0.8))))
    for _ in range(int(rng.integers(1, 3))):
        i = int(rng.integers(ys.size))
        cv2.circle(out, (int(xs[i]), int(ys[i])), radius, 0.0, -1)
    return out


def specks(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One to three small dots of ink near (not on) the fitted 28x28 digit, as dust a scan keeps."""
    out = img.copy()
    for _ in range(int(rng.integers(1, 4))):
        y, x = (int(v) for v in rng.integers(2, 26, 2))
        if img[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].max() > 0:
            continue
        cv2.circle(out, (x, y), int(rng.integers(0, 2)), float(rng.uniform(0.4, 1.0)), -1)
    return out


def residual(img: np.ndarray, cfg: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Zoom and shift of the fitted 28x28 (what a front end's imperfections leave)."""
    z = 1.0 + rng.uniform(-cfg.zoom, cfg.zoom) if cfg.zoom else 1.0
    tx, ty = (rng.uniform(-cfg.shift, cfg.shift, 2) * 28) if cfg.shift else (0.0, 0.0)
    m = np.array([[z, 0, 14 * (1 - z) + tx], [0, z, 14 * (1 - z) + ty]], np.float32)
    return cv2.warpAffine(img, m, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0.0)


def augment_one(digit: np.ndarray, label: int, cfg: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """uint8 [28,28] (ink high, as the front end gives it) -> float32 [28,28] in [0,1], augmented."""
    img = np.zeros((CANVAS, CANVAS), np.float32)
    big = cv2.resize(digit.astype(np.float32) / 255.0, (28 * SCALE, 28 * SCALE), interpolation=cv2.INTER_LINEAR)
    img[8 : 8 + 28 * SCALE, 8 : 8 + 28 * SCALE] = big
    if cfg.styles and rng.random() < cfg.styles:
        img = style_variant(img, label, rng, cfg.flag_angle, cfg.flag_length)
    img = affine(img, cfg, rng)
    if cfg.elastic_alpha:
        img = elastic(img, cfg.elastic_alpha, cfg.elastic_sigma, rng)
    # Always redrawn with a crisp edge: MNIST was anti-aliased from binary scans by its downsampling, and
    # so is this canvas by `fit` (else two resamplings blur it: measured 21% of pixels > 10 against 17%).
    img = pen_width(img, rng.uniform(-cfg.pen, cfg.pen) if cfg.pen else 0.0)
    if cfg.gaps and rng.random() < cfg.gaps:
        img = gaps(img, rng)
    fitted = fit(img)
    if fitted is None:  # the ink vanished (never seen in practice): train on the digit as it came
        fitted = digit
    out = residual(fitted.astype(np.float32) / 255.0, cfg, rng)
    if cfg.specks and rng.random() < cfg.specks:
        out = specks(out, rng)
    return out


def augment_batch(digits: np.ndarray, labels: np.ndarray, cfg: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """uint8 [N,28,28] -> float32 [N,28,28,1] (the model's input)."""
    return np.stack([augment_one(d, int(y), cfg, rng) for d, y in zip(digits, labels, strict=True)])[..., None]
