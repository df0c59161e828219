"""The front end: any grey image -> the 28x28 digit the model sees (OpenCV and NumPy; no framework).

reduce -> a sheet photographed on a desk cut out of it -> polarity -> flatten the light -> Otsu ink mask ->
printed lines removed -> faint pixels within a stroke width rejoin the strokes -> only the digit's pieces kept
-> fitted as MNIST (20x20 box, aspect kept, centred by mass in 28x28). One copy, shared by the web, the
workers, the CLI, training and the tests.
"""

from __future__ import annotations

import numpy as np

from digitflow.frontend.errors import NoDigitFound
from digitflow.frontend.fitting import BOX, CENTRE, SIZE, fit, mean_stroke_width
from digitflow.frontend.ink import light_ink, reduce, relative, separate, stands_out, to_uint8
from digitflow.frontend.lines import remove_lines
from digitflow.frontend.pieces import keep_digit
from digitflow.frontend.sheet import cut_out, dark_surround

__all__ = ["to_digit", "is_model_format"]
REACH = 1.0  # faint pixels rejoin a stroke only this many stroke widths from its solid ink


def is_model_format(ink_high: np.ndarray) -> bool:
    """Already a digit as the model takes it (28x28 on black, fitted and centred): re-fitting it would
    only resample it, so it passes unchanged (the front end is idempotent on MNIST)."""
    if ink_high.shape != (SIZE, SIZE) or ink_high.max() == 0:
        return False
    rows, cols = np.flatnonzero(ink_high.any(axis=1)), np.flatnonzero(ink_high.any(axis=0))
    if abs(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 - BOX) > 2:  # fitted to the 20x20 box
        return False
    if np.count_nonzero(ink_high[[0, -1]]) + np.count_nonzero(ink_high[:, [0, -1]]):
        return False
    mass = ink_high.astype(np.float64)
    ii = np.arange(SIZE, dtype=np.float64)
    ci, cj = mass.sum(axis=1) @ ii / mass.sum(), mass.sum(axis=0) @ ii / mass.sum()
    return abs(ci - CENTRE) <= 1.5 and abs(cj - CENTRE) <= 1.5


def to_digit(grey: np.ndarray, ink_high: bool | None = None) -> np.ndarray:
    """Grey image (float in [0,1] or uint8; light = high) -> uint8 [28,28], ink high. Raises NoDigitFound.

    `ink_high` says the polarity when the caller knows it (the API's pixel arrays); else it is decided.
    """
    g = reduce(to_uint8(grey))
    if int(g.max()) - int(g.min()) < 8:
        raise NoDigitFound("no digit found: the image is blank")
    light = ink_high if ink_high is not None else light_ink(g)
    if light and is_model_format(g):
        return g.copy()  # already as the model takes it: idempotent, no resampling
    if ink_high is None and dark_surround(g):  # a photo of a sheet on a desk: read the sheet alone
        sheet = cut_out(g)
        if sheet is not None:
            return to_digit(sheet, ink_high=False)
    if ink_high is None and light:
        light = light_ink(relative(g))  # both views must agree: a shadow is not dark paper
    if not stands_out(g):
        raise NoDigitFound("no digit found: the image is blank")
    paper_high = 255 - g if light else g
    ink = separate(paper_high)
    if ink is None:
        raise NoDigitFound("no digit found: no ink stands out from the paper")
    mask, lines = remove_lines(ink.mask, ink.faint)
    if not mask.any():
        raise NoDigitFound("no digit found: the image has only printed lines")
    mask = keep_digit(ink.grow(mask, within=~lines, reach=max(2, round(REACH * mean_stroke_width(mask)))))
    if not mask.any():
        raise NoDigitFound("no digit found: the image has only specks")
    out = fit(ink.soft(mask))
    if out is None:
        raise NoDigitFound("no digit found: the ink vanishes at 28x28")
    return out
