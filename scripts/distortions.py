"""Make MNIST test digits look like real uploads (used by scripts/robustness.py and its test).

Each distortion takes a uint8 [28,28] ink-high digit and a seeded RNG and returns encoded image bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter, ImageOps


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _scaled(x: np.ndarray, factor: float) -> Image.Image:
    size = max(8, round(28 * factor))
    return Image.fromarray(x).resize((size, size), Image.Resampling.BICUBIC)


def dark_on_light(x, rng):
    return _encode(Image.fromarray(255 - x))


def off_centre(x, rng):
    canvas = np.zeros((160, 220), np.uint8)
    top, left = rng.integers(0, 160 - 28), rng.integers(0, 220 - 28)
    canvas[top : top + 28, left : left + 28] = x
    return _encode(Image.fromarray(255 - canvas))


def scaled_up(x, rng):
    return _encode(_scaled(x, rng.uniform(4, 10)))


def scaled_down(x, rng):
    small = np.asarray(_scaled(x, rng.uniform(0.55, 0.8)))
    canvas = np.zeros((28, 28), np.uint8)
    o = (28 - small.shape[0]) // 2
    canvas[o : o + small.shape[0], o : o + small.shape[1]] = small
    return _encode(Image.fromarray(canvas))


def jpeg(x, rng):
    return _encode(_scaled(255 - x, 4).convert("RGB"), "JPEG", quality=int(rng.integers(25, 60)))


def thin_strokes(x, rng):
    """A thin pen: the digit drawn large (10x) along its centre lines with a pen ~5 px wide."""
    big = np.asarray(_scaled(x, 10), dtype=np.int16)
    p = np.pad(big, 1, mode="edge")
    across = (big >= p[1:-1, :-2]) & (big >= p[1:-1, 2:])  # a ridge seen left to right ...
    down = (big >= p[:-2, 1:-1]) & (big >= p[2:, 1:-1])  # ... or top to bottom
    ridge = Image.fromarray(((across | down) & (big > 100)).astype(np.uint8) * 255)
    return _encode(ImageOps.invert(ridge.filter(ImageFilter.MaxFilter(5))))


def noisy_paper(x, rng):
    big = np.asarray(_scaled(x, 3), dtype=np.float32) / 255
    paper = 200 + rng.normal(0, 18, big.shape)
    img = paper * (1 - big) + 30 * big
    return _encode(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)))


def tinted_paper(x, rng):
    big = np.asarray(_scaled(x, 3), dtype=np.float32)[..., None] / 255
    paper = np.array([240, 226, 178], np.float32) + rng.normal(0, 6, (1, 1, 3))
    ink = np.array([30, 45, 140], np.float32)
    img = paper * (1 - big) + ink * big
    return _encode(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB"))


def rgba_transparent(x, rng):
    big = np.asarray(_scaled(x, 3))
    rgba = np.zeros(big.shape + (4,), np.uint8)
    rgba[..., 3] = big  # black ink whose opacity is the stroke; the background is fully transparent
    return _encode(Image.fromarray(rgba, "RGBA"))


KINDS: dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "dark on light": dark_on_light,
    "off-centre in a large canvas": off_centre,
    "scaled up 4-10x": scaled_up,
    "scaled down 0.55-0.8x": scaled_down,
    "JPEG q25-60, dark on light": jpeg,
    "thin strokes, drawn large": thin_strokes,
    "noisy grey paper": noisy_paper,
    "tinted paper, blue ink": tinted_paper,
    "RGBA, transparent background": rgba_transparent,
}


def naive_input(data: bytes) -> np.ndarray:
    """What a service without normalisation feeds the model: grey, squashed to 28x28, as is."""
    img = Image.open(io.BytesIO(data)).convert("L").resize((28, 28), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)
