"""A sheet of paper photographed on a darker desk or table: find the sheet and keep only it.

When the desk fills much of a photo, its dark border and area read as dark paper (`ink.light_ink`), the
light sheet as the ink, and the whole sheet becomes "the digit". A sheet is told from a light digit (chalk
on a board, a white stroke) by its shape, as document scanners find pages: the largest light piece, solid
and convex, close to a quadrilateral (a rectangle seen at an angle), mostly inside the frame (the lit part
of a page half in shadow runs along it), not slender, with darker marks covering less than half of it. The
sheet is cut out, the desk around it and the rim where the camera blurred the two together replaced by the
sheet's own paper level, and what is written on it is read as dark ink on light paper. No marks are
required (faint pencil may not show at the desk's contrast): a blank sheet is cut out too, and refused.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitflow.frontend.ink import SMALL, border, otsu, quantile

MIN_AREA = 0.02  # of the image: a smaller light piece is a detail of the scene, not the sheet
SOLID = 0.93  # area within its outline / its convex hull: a page is convex, most light digits are not
CORNERS = 6  # corners at 2% of its perimeter: 4 for a page, 5-6 where the frame cuts it or a corner is bent
SLENDER = 2.5  # its minimal rectangle at most this long for its width (an index card 1.7); a light stroke is longer
MARKS = 0.4  # at most this share of it darker marks: writing on a page; a light ring around dark is a 0
IN_FRAME = 0.3  # at most this share of its outline on the frame's edge: a lit part of a page in shadow is not a sheet
OPEN = 0.03  # of the image's shorter side: light details thinner than this (a desk's grain) do not join the sheet
MIN_TURN = 2.0  # degrees: a sheet turned less than this is cut out as it lies (no resampling)
RIM = 0.03  # of its shorter side: the edge left out, where the desk's colour bleeds into the paper


def dark_surround(grey: np.ndarray) -> bool:
    """Is most of the image's border in Otsu's dark class (a desk, a board, or dark paper)?"""
    return min(grey.shape) >= SMALL and bool((border(grey) <= otsu(grey)).mean() > 0.5)


def cut_out(grey: np.ndarray) -> np.ndarray | None:
    """The sheet of paper in a photo of it on a darker surface, turned upright, the surface replaced by
    paper; None when no light piece of the image is shaped like a page."""
    found = _find(grey)
    if found is None:
        return None
    sheet, piece, (_, (rw, rh), angle) = found
    paper = np.uint8(round(quantile(grey[(sheet & piece).astype(bool)], 0.5)))
    rim = max(1, round(RIM * min(rw, rh)))
    inner = cv2.erode(sheet, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1, 2 * rim + 1)))
    if not inner.any():
        return None
    crop, inner = _box(grey, inner)
    turn = (angle + 45.0) % 90.0 - 45.0  # the smallest of the turns (in 90-degree steps) that square its edges
    if abs(turn) >= MIN_TURN:  # people write along the sheet's edges: squaring them stands the digit upright
        crop, inner = _box(*_turned(crop, inner, turn, int(paper)))
    crop[inner == 0] = paper
    return crop


def _box(grey: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y, w, h = cv2.boundingRect(mask)
    return grey[y : y + h, x : x + w].copy(), mask[y : y + h, x : x + w]


def _turned(grey: np.ndarray, mask: np.ndarray, degrees: float, fill: int) -> tuple[np.ndarray, np.ndarray]:
    """Both turned counter-clockwise about their centre, on a canvas large enough to hold them whole."""
    h, w = grey.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    size = (int(np.ceil(w * cos + h * sin)), int(np.ceil(w * sin + h * cos)))
    m[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
    return (cv2.warpAffine(grey, m, size, flags=cv2.INTER_LINEAR, borderValue=fill),
            cv2.warpAffine(mask, m, size, flags=cv2.INTER_NEAREST, borderValue=0))


def _find(grey: np.ndarray):
    """(sheet, its light pixels, its minimal rectangle) of the largest light piece if it is shaped like a page."""
    smooth = cv2.GaussianBlur(grey, (0, 0), 1.5)  # JPEG grain and paper texture do not split the sheet
    light = (smooth > otsu(smooth)).astype(np.uint8)
    k = max(3, int(OPEN * min(grey.shape)) | 1)
    return _page(cv2.morphologyEx(light, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))))


def _page(light: np.ndarray):
    h, w = light.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(light, connectivity=4)
    if n < 2:
        return None
    piece = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    contours, _ = cv2.findContours(piece, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = max(contours, key=cv2.contourArea)
    hull = cv2.convexHull(outline)
    area = cv2.contourArea(outline)
    if area < MIN_AREA * h * w or area < SOLID * cv2.contourArea(hull):
        return None
    if not 4 <= len(cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True)) <= CORNERS:
        return None
    sheet = np.zeros_like(piece)  # the hull: writing that runs into the sheet's edge stays on the sheet
    cv2.fillConvexPoly(sheet, hull, 1)
    if np.count_nonzero(border(sheet)) > IN_FRAME * cv2.arcLength(hull, True):
        return None
    rect = cv2.minAreaRect(outline)
    rw, rh = rect[1]
    if max(rw, rh) > SLENDER * max(min(rw, rh), 1.0):
        return None
    if np.count_nonzero(sheet & (1 - piece)) > MARKS * np.count_nonzero(sheet):
        return None
    return sheet, piece, rect
