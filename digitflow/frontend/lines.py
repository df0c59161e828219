"""Remove printed straight lines (form boxes, frames, ruled and squared paper, table borders).

A candidate is a long, thin, straight run of ink found by a morphological opening with a line-shaped
kernel most of the image long. It is printed, not a stroke of the digit, when both its ends lie in the
paper and it reaches beyond the rest of the ink at both ends (a ruled line through the digit, the sides
of a box around it), or stands apart from the rest and is at least as long as the digit is wide. When
little else is left, a single upright one in the middle is the digit (a 1). Strokes that crossed a
removed line are rejoined.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitflow.frontend.pieces import drop_specks

DETECT_SIDE = 160  # lines are found at this scale, so a line skewed by a degree or two stays one run
MIN_LENGTH = 0.7  # of the image side: printed lines run across (nearly) the whole field
SLENDER = 8  # a printed line is at least this many times longer than it is thick
MAX_THICKNESS = 0.12  # of the image side: thicker runs are bold strokes, not printed lines
DRIFT_FROM = 48  # px at the detection scale: longer runs may drift by a pixel (a scan skewed by a degree)
EDGE = 0.03  # of the image side: a line this close to both ends runs from edge to edge
MIN_PIXELS = 32  # a printed line shorter than this (a 16x16 or 28x28 crop) cannot be told from a stroke
END = 0.1  # of the line's length: its ends, which must lie in the paper
BEYOND = 0.1  # of the line's length: how far a printed line reaches past the digit at each end


@dataclass(eq=False)
class Line:
    pixels: np.ndarray  # bool, at full resolution
    horizontal: bool
    start: int  # extent along the line
    end: int
    lo: int  # extent across it
    hi: int

    @property
    def length(self) -> int:
        return self.end - self.start


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, x1, y0, y1), inclusive-exclusive, of the True pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1


def candidates(mask: np.ndarray) -> list[Line]:
    h, w = mask.shape
    f = min(1.0, DETECT_SIDE / max(h, w))
    small = mask.astype(np.uint8)
    if f < 1.0:
        small = (cv2.resize(small * 255, (max(1, round(w * f)), max(1, round(h * f))),
                            interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    sh, sw = small.shape
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    lines = []
    for horizontal in (True, False):
        side, across = (sw, sh) if horizontal else (sh, sw)
        length = round(MIN_LENGTH * side)
        if length * (1 / f) < MIN_PIXELS:  # at this size a printed line cannot be told from a stroke
            continue
        drift = 1 if side >= DRIFT_FROM else 0
        tol = np.ones((1 + 2 * drift, 1) if horizontal else (1, 1 + 2 * drift), np.uint8)
        along = (length, 1) if horizontal else (1, length)
        runs = cv2.morphologyEx(cv2.dilate(small, tol), cv2.MORPH_OPEN,
                                cv2.getStructuringElement(cv2.MORPH_RECT, along))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            run_len = bw if horizontal else bh
            thick = max(1.0, area / max(run_len, 1) - 2 * drift)
            if thick > max(1.0, MAX_THICKNESS * across) or run_len < SLENDER * thick:
                continue
            part = (labels == i).astype(np.uint8)
            if f < 1.0:
                part = cv2.resize(part, (w, h), interpolation=cv2.INTER_NEAREST)
            pixels = cv2.dilate(part, np.ones((3, 3), np.uint8)).astype(bool) & grown  # with its fringe
            box = _box(pixels)
            if box is None:
                continue
            x0, x1, y0, y1 = box
            lines.append(Line(pixels, horizontal, *((x0, x1, y0, y1) if horizontal else (y0, y1, x0, x1))))
    return lines


def _extent(mask: np.ndarray, horizontal: bool) -> tuple[int, int] | None:
    box = _box(mask)
    if box is None:
        return None
    return box[:2] if horizontal else box[2:]


def _ends_free(line: Line, rest: np.ndarray) -> bool:
    """A printed line ends in the paper (or at the image's edge); a digit's stroke ends in another stroke
    (the bar of a 7 in its stem, the foot of a 2 in its curve), as a ruled line through the digit does not."""
    near = cv2.dilate(rest.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    tip = max(2, round(END * line.length))
    for a, b in ((line.start, line.start + tip), (line.end - tip, line.end)):
        part = line.pixels[:, a:b] if line.horizontal else line.pixels[a:b, :]
        there = near[:, a:b] if line.horizontal else near[a:b, :]
        if (part & there).any():
            return False
    return True


def _is_printed(line: Line, rest: np.ndarray) -> bool:
    span = _extent(rest, line.horizontal)
    if span is None:
        return True
    if not _ends_free(line, rest):
        return False
    margin = BEYOND * line.length
    if span[0] - line.start >= margin and line.end - span[1] >= margin:
        return True
    near = cv2.dilate(line.pixels.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return not (near & rest).any() and line.length >= span[1] - span[0]


def _the_one(lines: list[Line], shape: tuple[int, int]) -> Line | None:
    """The upright candidate nearest the middle, if it is in the middle half: a 1, when there is less other
    ink than it. One that runs from edge to edge is a printed line (a grid), unless it is all there is."""
    h, w = shape
    upright = [ln for ln in lines if not ln.horizontal and abs((ln.lo + ln.hi) / 2 - w / 2) <= w / 4
               and (len(lines) == 1 or ln.start > EDGE * h or ln.end < (1 - EDGE) * h)]
    return min(upright, key=lambda ln: abs((ln.lo + ln.hi) / 2 - w / 2), default=None)


def remove_lines(mask: np.ndarray, faint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the mask without printed lines, the pixels removed). Lines are sought in `faint` too (a lower
    threshold): printed lines are often lighter than ink."""
    none = np.zeros_like(mask)
    lines = candidates(faint | mask)
    if not lines:
        return mask, none
    covered = none.copy()
    for ln in lines:
        covered |= ln.pixels
    rest = drop_specks(mask & ~covered)
    one = _the_one(lines, mask.shape)
    if one is not None and rest.sum() < one.pixels.sum():  # little else but an upright stroke: a 1
        lines.remove(one)
        rest = rest | one.pixels
    elif not rest.any():
        return none, covered
    printed = [ln for ln in lines if _is_printed(ln, rest)]
    if not printed:
        return mask, none
    removed = none.copy()
    for ln in printed:
        removed |= ln.pixels
    return _rejoin(mask & ~removed, printed), removed


def _rejoin(mask: np.ndarray, printed: list[Line]) -> np.ndarray:
    """Close the gaps a removed line cut into the strokes that crossed it (only inside the line's band)."""
    out = mask.astype(np.uint8)
    for ln in printed:
        gap = ln.hi - ln.lo + 3
        kernel = np.ones((gap, 1) if ln.horizontal else (1, gap), np.uint8)
        closed = cv2.morphologyEx(out, cv2.MORPH_CLOSE, kernel)
        band = cv2.dilate(ln.pixels.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        out[band & closed.astype(bool)] = 1
    return out.astype(bool)
