"""Separate ink from paper (OpenCV): reduce, decide polarity, flatten uneven light, threshold with Otsu.

Otsu's threshold maximises the between-class variance, so it assumes nothing about which class is the
minority: it holds for a thin pen stroke on a page and for marker ink covering half of a 16x16 scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

cv2.setNumThreads(1)  # images are small: OpenCV's thread pool costs more than it saves; processes scale out

WORK_SIDE = 500  # larger images are reduced to this longest side first (a 12 MP JPEG decodes at 1/8 size)
MIN_CONTRAST = 0.1  # ink must be at least 10% darker than its paper (faint pencil on grey paper is ~0.3)
UNEVEN = 0.08  # light that varies by more than 8% across the paper is flattened
NOISE_SIGMAS = 4.0  # and stand out from the paper's own grain by this many robust standard deviations
TINY = 24  # px: below this a crop is all digit or all paper; nothing is taken as slow light
SMALL = 48  # px: crops this small are cut from scans, not photographed on their own: their light is even
COARSE = 64  # px: the short side at which slow changes of the light are judged


@dataclass
class Ink:
    """The ink of an image: `level` 0-255 (paper 0, ink high), the Otsu `mask`, and the scale of both."""

    level: np.ndarray  # uint8: darkness relative to the local paper
    mask: np.ndarray  # bool: pixels that belong to the ink class
    faint: np.ndarray  # bool: pixels halfway there (where printed lines, often lighter than ink, are sought)
    paper: float  # the paper's level in `level` (about 0)
    strong: float  # the level of solid ink (90th percentile of the ink class)
    noise: float  # robust standard deviation of the paper's level

    def grow(self, keep: np.ndarray, within: np.ndarray, reach: int) -> np.ndarray:
        """Hysteresis: `keep` plus the faint pixels (inside `within`, at most `reach` pixels from `keep`)
        connected to it, so that faint parts of a stroke rejoin it; a faint network that runs on far from
        the ink, such as the unfound rest of a grid, is paper, not stroke."""
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
        within = within & cv2.dilate(keep.astype(np.uint8), disc).astype(bool)
        _, labels = cv2.connectedComponents(((self.faint & within) | keep).astype(np.uint8), connectivity=8)
        return labels_in(labels, np.unique(labels[keep]))

    def soft(self, keep: np.ndarray) -> np.ndarray:
        """Ink intensity in [0,1] inside `keep` (grown by a pixel to keep anti-aliased edges); 0 elsewhere."""
        grown = cv2.dilate(keep.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        value = (self.level.astype(np.float32) - self.paper) / max(self.strong - self.paper, 1.0)
        value[~grown | (self.level <= self.paper + 2 * self.noise)] = 0.0
        return np.clip(value, 0.0, 1.0)


def quantile(u8: np.ndarray, q: float) -> float:
    """Quantile of uint8 values through their histogram (much cheaper than np.percentile on small images)."""
    if u8.size == 0:
        return 0.0
    cumulative = np.cumsum(np.bincount(u8.ravel(), minlength=256))
    return float(np.searchsorted(cumulative, q * cumulative[-1]))


def labels_in(labels: np.ndarray, keep) -> np.ndarray:
    """Mask of the pixels whose label is in `keep` (a lookup table: cheaper than np.isin)."""
    table = np.zeros(int(labels.max()) + 1, bool)
    table[np.asarray(list(keep), dtype=np.intp)] = True
    table[0] = False
    return table[labels]


def to_uint8(grey: np.ndarray) -> np.ndarray:
    """A grey image in [0,1] (float) or 0-255 as uint8."""
    if grey.dtype == np.uint8:
        return grey
    return np.clip(np.rint(np.asarray(grey, np.float32) * 255.0), 0, 255).astype(np.uint8)


def reduce(grey: np.ndarray) -> np.ndarray:
    """Shrink by area averaging so that the longest side is at most WORK_SIDE (cheap for 12 MP photos)."""
    h, w = grey.shape
    if max(h, w) <= WORK_SIDE:
        return grey
    f = WORK_SIDE / max(h, w)
    return cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def otsu(u8: np.ndarray) -> int:
    t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return int(t)


def border(a: np.ndarray) -> np.ndarray:
    if min(a.shape) <= 2:
        return a.ravel()
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def _coarse(a: np.ndarray) -> np.ndarray:
    """Area-averaged down to a short side of COARSE px (never up): where the light's slow changes are seen."""
    h, w = a.shape
    f = min(1.0, COARSE / min(h, w))
    return cv2.resize(a, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def relative(grey: np.ndarray, scale: float = 0.25) -> np.ndarray:
    """Grey divided by its blur over `scale` of the image (a quarter): the light's slow changes taken out
    (for the polarity and blank decisions; it needs no polarity). Tiny crops are returned as they are."""
    h, w = grey.shape
    if min(h, w) < TINY:
        return grey
    small = _coarse(grey)
    blur = cv2.GaussianBlur(small.astype(np.float32), (0, 0), min(small.shape) * scale, borderType=cv2.BORDER_REPLICATE)
    blur = cv2.resize(blur, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(128.0 * grey / np.maximum(blur, 1.0), 0, 255).astype(np.uint8)


def stands_out(grey: np.ndarray) -> bool:
    """Is anything darker or lighter than its surroundings by more than the paper's grain and a minimum
    contrast? Taken on the grey relative to its blur over a sixteenth of the image, so blank paper under
    a gradient or a shadow is blank (a digit's edges stand out even where its bold strokes do not)."""
    rel = relative(grey, 1 / 16)
    if min(rel.shape) >= 3:
        rel = cv2.medianBlur(rel, 3)
    med = quantile(rel, 0.5)
    deviation = max(float(rel.max()) - med, med - float(rel.min()))
    return deviation >= max(MIN_CONTRAST * max(med, 1.0), 1.5 * NOISE_SIGMAS * noise_level(rel))


def light_ink(grey: np.ndarray) -> bool:
    """Light ink on dark paper only if Otsu's dark class holds most of the border *and* most of the area.

    Either cue alone fails on real scans: a bold digit stretched into its box covers much of the border
    (Semeion: up to 61%), and heavy marker can cover half of the image; both together never did. The
    front end asks it of the grey and of the grey relative to its surroundings (`relative`), so that a
    shadow is not taken for dark paper.
    """
    dark = grey <= otsu(grey)
    return bool(border(dark).mean() > 0.5 and dark.mean() > 0.5)


def stroke_width(mask: np.ndarray) -> float:
    """Stroke width in pixels that three quarters of the ink is no wider than (twice the distance to the
    paper along the strokes' centre lines, weighted by width): thin printed lines do not pull it down."""
    if not mask.any():
        return 1.0
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    ridge = mask & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))
    widths = np.sort(np.maximum(2.0 * dist[ridge] - 1.0, 1.0))
    share = np.cumsum(widths) / widths.sum()
    return float(widths[np.searchsorted(share, 0.75)])


def _odd(n: float) -> int:
    return max(3, int(n) | 1)


def local_stroke_width(paper_high: np.ndarray) -> float:
    """Stroke width measured on an adaptive threshold (ink darker than its neighbourhood), which finds the
    strokes in shadow and in light alike. A stroke wider than about half the neighbourhood shows only its
    outline there, so the neighbourhood is doubled for as long as the strokes measure wider for it."""
    side = min(paper_high.shape)
    block = _odd(side / 8)
    c = MIN_CONTRAST * quantile(paper_high, 0.5)
    width = 0.0
    while True:
        local = cv2.adaptiveThreshold(paper_high, 1, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, block, c)
        wider = stroke_width(local.astype(bool))
        if wider < 1.25 * width or block >= side:
            return max(width, wider)
        width, block = wider, _odd(2 * block)


def light_is_uneven(paper_high: np.ndarray) -> bool:
    """Does the light vary across the paper? At a coarse scale, the paper is where a pixel is as light as
    the brightest around it (a closing a quarter of the image wide: inside bold ink that brightest is ink,
    and the ink pixels there are much darker than it, so they do not count). The light is uneven when
    those paper pixels differ by more than UNEVEN (a shadow, a gradient), not for scans and drawings."""
    if min(paper_high.shape) < SMALL:
        return False
    small = cv2.GaussianBlur(_coarse(paper_high), (0, 0), 2.0)  # the paper's grain averaged out: light varies slowly
    k = _odd(min(small.shape) / 4)
    light = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)),
                             borderType=cv2.BORDER_REPLICATE)
    top = quantile(small, 0.95)
    paper = small[small.astype(np.int16) >= light.astype(np.int16) - 0.03 * top]
    if paper.size == 0:
        return False
    lo, mid, hi = (quantile(paper, q) for q in (0.05, 0.5, 0.95))
    return bool(hi - lo > UNEVEN * mid)


def _light_level(paper_high: np.ndarray) -> float:
    """One paper level: the median of Otsu's light class."""
    light = paper_high > otsu(paper_high)
    return quantile(paper_high[light], 0.5) if light.any() else 255.0


def flatten(paper_high: np.ndarray) -> np.ndarray:
    """Darkness relative to the local paper, 0-255: uneven light (a shadow, a gradient) divided out.

    Where the light is even (scans, drawings, small crops) one paper level serves, so bold strokes can
    never be mistaken for light. Otherwise the paper is estimated by a morphological closing (a max then
    a min filter) three strokes wide.
    """
    p = paper_high
    k = _odd(3 * local_stroke_width(p)) if light_is_uneven(p) else 0
    if not k or 2 * k > min(p.shape):  # even light, or strokes too bold for a local estimate
        background = np.float32(max(_light_level(p), 1.0))
    else:
        smooth = cv2.GaussianBlur(p, (0, 0), 1.0)  # the max filter would otherwise ride on the grain
        closed = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)),
                                  borderType=cv2.BORDER_REPLICATE)
        background = np.maximum(cv2.blur(closed, (k, k)).astype(np.float32), 1.0)
    dark = (background - p.astype(np.float32)) / background
    return np.clip(np.rint(dark * 255.0), 0, 255).astype(np.uint8)


def noise_level(level: np.ndarray) -> float:
    """Robust standard deviation of the pixel noise, from the differences of horizontal neighbours: their
    lower quartile is noise even where edges make up most of a small busy crop (for Gaussian noise the
    quartile of |difference| is 0.3186 x sqrt(2) sigma), and unlike the paper's spread it ignores content."""
    if level.shape[1] < 2:
        return 0.0
    diff = cv2.absdiff(level[:, 1:], level[:, :-1])
    return quantile(diff, 0.25) / (0.3186 * np.sqrt(2.0))


def separate(paper_high: np.ndarray) -> Ink | None:
    """Flatten, then split ink from paper with Otsu; None when nothing stands out from the paper."""
    level = flatten(paper_high)
    noise = noise_level(level)
    if noise > 0.02 * 255 and min(level.shape) >= 16:  # grainy paper or sensor noise: median-filter first
        level = cv2.medianBlur(level, 3)
        noise = noise_level(level)
    t = otsu(level)
    paper = quantile(level[level <= t], 0.5)
    t = max(t, int(paper + NOISE_SIGMAS * noise))
    mask = level > t
    if not mask.any():
        return None
    strong = quantile(level[mask], 0.9)
    if strong - paper < MIN_CONTRAST * 255 or strong - paper < 1.5 * NOISE_SIGMAS * noise:
        return None
    faint = level > paper + max(0.5 * (t - paper), NOISE_SIGMAS * noise)
    return Ink(level=level, mask=mask, faint=faint, paper=paper, strong=strong, noise=noise)
