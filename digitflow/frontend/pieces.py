"""Keep only the digit: drop specks, dirt and slivers of neighbouring characters; keep a broken digit whole.

The digit grows from a seed, the largest stroke-like piece weighted by how central it is, by adding the
pieces near it: broken strokes close by, detached parts (a 5's top bar) a little further if they are not cut off at
the image's edge, where a neighbour's sliver would be.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitflow.frontend.fitting import mean_stroke_width
from digitflow.frontend.ink import labels_in

STROKE_LIKE = 3.0  # a digit's main piece is this many times longer than its strokes are wide (a dot: 2.5)
LARGE = 0.25  # of the image's longest side: a piece this large is the digit even if compact (bold marker)
SPECK = 0.04  # of the image's longest side: a piece smaller than this alone is not a digit
CLOSE_GAP = 0.12  # of the digit's size: pieces this close are broken strokes of the digit
PART_GAP = 0.3  # of the digit's size: detached parts away from the image's edge
MIN_PART = 0.03  # of the digit's ink: smaller detached pieces are dirt
DOMINANT = 3.0  # the digit has at least three times the ink of any other piece inside the image
SPECK_PART = 0.01  # of the digit's ink: even close by, smaller pieces are specks


def _pieces(mask: np.ndarray):
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return labels, [(i, *(int(v) for v in stats[i])) for i in range(1, n)]


def _min_size(shape: tuple[int, int]) -> float:
    return max(2.0, SPECK * max(shape))


def drop_specks(mask: np.ndarray) -> np.ndarray:
    """The mask without pieces too small to be a digit or part of one on their own."""
    labels, pieces = _pieces(mask)
    keep = [i for i, x, y, w, h, area in pieces if max(w, h) >= _min_size(mask.shape)]
    return labels_in(labels, keep) if keep else np.zeros_like(mask)


def _gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Chebyshev distance between two boxes (x0, y0, x1, y1), 0 when they overlap."""
    return max(0, b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])


def _stroke_like(labels: np.ndarray, piece) -> bool:
    """Long compared with its stroke width (2 x area / perimeter), as pen strokes are and specks are not."""
    i, x, y, w, h, area = piece
    if max(w, h) < 3:
        return False
    return max(w, h) >= STROKE_LIKE * mean_stroke_width(labels[y : y + h, x : x + w] == i)


def _at_edge(piece, w: int, h: int) -> bool:
    """Cut off by the image's edge (where a neighbour's sliver would be)."""
    i, x, y, pw, ph, area = piece
    return x == 0 or y == 0 or x + pw == w or y + ph == h


def keep_digit(mask: np.ndarray) -> np.ndarray:
    """The pieces that make up the digit, or an empty mask when only specks are there."""
    h, w = mask.shape
    labels, pieces = _pieces(mask)
    if not pieces:
        return np.zeros_like(mask)
    centre = np.array([w / 2, h / 2])
    reach = np.hypot(w / 2, h / 2)

    def weight(p):
        i, x, y, pw, ph, area = p
        off = np.linalg.norm(np.array([x + pw / 2, y + ph / 2]) - centre) / max(reach, 1.0)
        return area * (1.0 - 0.75 * off)

    strokes = [p for p in pieces if max(p[3], p[4]) >= LARGE * max(h, w) or _stroke_like(labels, p)]
    if not strokes:
        return np.zeros_like(mask)
    seed = max(strokes, key=weight)
    chosen = [seed]
    box = (seed[1], seed[2], seed[1] + seed[3], seed[2] + seed[4])
    ink = seed[5]
    left = [p for p in pieces if p is not seed]
    while left:
        size = max(box[2] - box[0], box[3] - box[1])
        best, best_gap = None, None
        for p in left:
            i, x, y, pw, ph, area = p
            g = _gap(box, (x, y, x + pw, y + ph))
            near = (g <= CLOSE_GAP * size and area >= SPECK_PART * ink) or (
                g <= PART_GAP * size and not _at_edge(p, w, h) and area >= MIN_PART * ink)
            if near and (best_gap is None or g < best_gap):
                best, best_gap = p, g
        if best is None:
            break
        chosen.append(best)
        left.remove(best)
        i, x, y, pw, ph, area = best
        box = (min(box[0], x), min(box[1], y), max(box[2], x + pw), max(box[3], y + ph))
        ink += area
    if max(box[2] - box[0], box[3] - box[1]) < _min_size(mask.shape):
        return np.zeros_like(mask)
    inside = [p[5] for p in left if not _at_edge(p, w, h)]
    small = max(box[2] - box[0], box[3] - box[1]) < LARGE * max(h, w)
    if small and inside and ink < DOMINANT * max(inside):  # small pieces of one size scattered: specks
        return np.zeros_like(mask)
    return labels_in(labels, [p[0] for p in chosen])
