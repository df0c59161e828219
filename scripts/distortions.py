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


# --- Real-upload conditions (issue 13): scans and photos that do not look like MNIST ----------------------
# Each builds a page from the digit as ink coverage (0-1), then paper, printed lines, light and camera.
# Parameters are drawn from ranges, not fixed, so a front end tuned to one setting does not pass.


def _ink(x: np.ndarray, scale: float) -> np.ndarray:
    """The digit as ink coverage in [0,1], drawn `scale` times larger than 28x28."""
    return np.asarray(_scaled(x, scale), dtype=np.float32) / 255.0


def _place(ink: np.ndarray, shape: tuple[int, int], top: int, left: int) -> np.ndarray:
    page = np.zeros(shape, np.float32)
    h, w = ink.shape
    page[top : top + h, left : left + w] = np.maximum(page[top : top + h, left : left + w], ink[: shape[0] - top, : shape[1] - left])
    return page


def _on_paper(cover: np.ndarray, paper: float = 245.0, ink: float = 25.0) -> np.ndarray:
    """Grey page: paper level where there is no ink, ink level where the coverage is 1."""
    return paper * (1.0 - cover) + ink * cover


def _grey(page: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(page), 0, 255).astype(np.uint8))


def _lines(shape, rng, horizontal: bool, spacing: float, thickness: int, offset: float, skew: float) -> np.ndarray:
    """Coverage of printed parallel lines across the whole page (skewed by `skew` radians)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pos = (yy - np.tan(skew) * xx) if horizontal else (xx + np.tan(skew) * yy)
    d = np.mod(pos - offset, spacing)
    d = np.minimum(d, spacing - d)
    return np.clip(thickness / 2 + 0.5 - d, 0, 1)


def _margin_page(x, rng, scale, margin):
    ink = _ink(x, scale)
    m = [int(rng.integers(margin[0], margin[1] + 1)) for _ in range(4)]
    shape = (ink.shape[0] + m[0] + m[1], ink.shape[1] + m[2] + m[3])
    return _place(ink, shape, m[0], m[2])


def form_box(x, rng):
    """The digit written in a printed box, the field cut out around the box."""
    s = rng.uniform(3, 5)
    cover = _margin_page(x, rng, s, (int(2 * s), int(6 * s)))
    h, w = cover.shape
    t = int(rng.integers(1, 4))
    box = np.zeros_like(cover)
    box[:t], box[-t:], box[:, :t], box[:, -t:] = 1, 1, 1, 1
    pad = int(rng.integers(0, 3 * s))
    box = np.pad(box, pad)
    cover = np.pad(cover, pad)
    page = _on_paper(cover, paper=rng.uniform(225, 250))
    page = np.minimum(page, _on_paper(box, paper=255, ink=rng.uniform(40, 140)))
    return _encode(_grey(page))


def ruled_paper(x, rng):
    """Written on ruled paper: printed lines (grey or blue) run through the digit."""
    s = rng.uniform(3, 5)
    cover = _margin_page(x, rng, s, (int(2 * s), int(8 * s)))
    spacing = rng.uniform(0.3, 0.5) * cover.shape[0]
    lines = _lines(cover.shape, rng, True, spacing, int(rng.integers(1, 3)), rng.uniform(0, spacing),
                   rng.uniform(-0.01, 0.01))
    paper = np.array([250, 248, 240], np.float32)
    line_colour = np.array([150, 170, 210], np.float32) * rng.uniform(0.7, 1.05)
    ink_colour = np.array([35, 35, 60], np.float32)
    rgb = paper * (1 - lines[..., None]) + line_colour * lines[..., None]
    rgb = rgb * (1 - cover[..., None]) + ink_colour * cover[..., None]
    return _encode(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"))


def squared_paper(x, rng):
    """Squared (graph) paper: a grid of light lines through and around the digit."""
    s = rng.uniform(3, 5)
    cover = _margin_page(x, rng, s, (int(2 * s), int(8 * s)))
    spacing = rng.uniform(0.15, 0.3) * cover.shape[0]
    skew = rng.uniform(-0.01, 0.01)
    t = int(rng.integers(1, 3))
    grid = np.maximum(_lines(cover.shape, rng, True, spacing, t, rng.uniform(0, spacing), skew),
                      _lines(cover.shape, rng, False, spacing, t, rng.uniform(0, spacing), skew))
    page = _on_paper(grid, paper=rng.uniform(235, 252), ink=rng.uniform(140, 200))
    page = page * (1 - cover) + 30 * cover
    return _encode(_grey(page))


def light_gradient(x, rng):
    """A phone photo under light that falls off across the page, or with a soft shadow over part of it."""
    s = rng.uniform(3, 6)
    cover = _margin_page(x, rng, s, (int(4 * s), int(14 * s)))
    h, w = cover.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    along = (np.cos(a) * (xx - w / 2) + np.sin(a) * (yy - h / 2)) / max(h, w)  # about -0.7 .. 0.7
    if rng.random() < 0.5:
        light = 1.0 - rng.uniform(0.4, 0.65) * np.clip(along + 0.5, 0, 1)  # a gradient
    else:
        edge = rng.uniform(-0.3, 0.3)
        light = 1.0 - rng.uniform(0.35, 0.55) / (1 + np.exp(-(along - edge) * rng.uniform(15, 40)))  # a shadow
    page = _on_paper(cover, paper=rng.uniform(220, 250), ink=rng.uniform(20, 60)) * light
    page = page + rng.normal(0, 2.5, page.shape)
    return _encode(_grey(page))


def tight_16(x, rng):
    """Cut tight to the ink and stretched to fill a 16x16 box (aspect lost), dark on light: a postal scan."""
    rows, cols = np.flatnonzero(x.max(1) > 40), np.flatnonzero(x.max(0) > 40)
    crop = Image.fromarray(x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    small = np.asarray(crop.resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    if rng.random() < 0.5:
        small = (small > 0.35).astype(np.float32)  # thresholded to black and white, as many scanners do
    return _encode(_grey(_on_paper(small, paper=255, ink=0)))


def bold_marker(x, rng):
    """Heavy marker: strokes a fifth to a third of the digit's height, the ink covering up to half a tight crop
    (bolder still, the loops fill in and people cannot read them either)."""
    s = rng.uniform(3, 4)
    ink = _ink(x, s)
    r = int(rng.integers(int(0.5 * s), int(1.5 * s) + 1))
    disc = Image.fromarray((ink * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(2 * r + 1))
    cover = np.asarray(disc, np.float32) / 255
    rows, cols = np.flatnonzero(cover.max(1) > 0.3), np.flatnonzero(cover.max(0) > 0.3)
    m = int(rng.integers(0, int(2 * s)))
    cover = cover[max(rows[0] - m, 0) : rows[-1] + 1 + m, max(cols[0] - m, 0) : cols[-1] + 1 + m]
    return _encode(_grey(_on_paper(cover, paper=rng.uniform(230, 250), ink=rng.uniform(10, 40))))


def neighbour_slivers(x, rng):
    """A field cut into single digits: slivers of the neighbouring characters at the left and right edges."""
    s = rng.uniform(3, 4)
    ink = _ink(x, s)

    def ink_cols(a):
        cols = np.flatnonzero(a.max(0) > 0.3)
        return a[:, cols[0] : cols[-1] + 1]

    digit = ink_cols(ink)
    h, w = digit.shape
    neighbours = [ink_cols(_ink(np.rot90(x, 2), s)), ink_cols(_ink(x[:, ::-1], s))]  # other shapes, same pen
    gap = [int(rng.integers(int(0.15 * w) + 1, int(0.4 * w) + 2)) for _ in range(2)]
    part = [max(2, int(rng.uniform(0.1, 0.3) * n.shape[1])) for n in neighbours]
    cover = np.concatenate([neighbours[0][:, -part[0] :], np.zeros((h, gap[0]), np.float32), digit,
                            np.zeros((h, gap[1]), np.float32), neighbours[1][:, : part[1]]], axis=1)
    return _encode(_grey(_on_paper(cover, paper=rng.uniform(230, 250))))


def specks_and_dirt(x, rng):
    """Scanner dust and dirt: specks of several sizes and a faint grey smudge beside the digit."""
    s = rng.uniform(3, 5)
    cover = _margin_page(x, rng, s, (int(3 * s), int(10 * s)))
    h, w = cover.shape
    dirt = np.zeros_like(cover)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(5, 30))):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.5, 0.012 * max(h, w) + 1)
        dirt = np.maximum(dirt, ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) * rng.uniform(0.5, 1))
    cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.05, 0.15) * max(h, w)
    dirt = np.maximum(dirt, 0.2 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
    page = _on_paper(np.maximum(cover, dirt), paper=rng.uniform(225, 250))
    return _encode(_grey(page))


def pencil_grey_paper(x, rng):
    """Pencil on grey recycled paper: low contrast, grainy strokes."""
    s = rng.uniform(3, 5)
    cover = _margin_page(x, rng, s, (int(2 * s), int(8 * s)))
    grain = np.clip(rng.normal(1.0, 0.25, cover.shape), 0.3, 1.3)
    paper = rng.uniform(140, 190)
    ink = paper - rng.uniform(0.3, 0.45) * paper
    page = _on_paper(np.clip(cover * grain, 0, 1), paper=paper, ink=ink) + rng.normal(0, 3, cover.shape)
    return _encode(_grey(page))


INKS = np.array([[200, 30, 30], [20, 110, 40], [30, 50, 170], [110, 30, 140], [20, 20, 20]], np.float32)
TINTS = np.array([[250, 240, 190], [250, 215, 220], [215, 240, 215], [210, 230, 250], [235, 225, 210]], np.float32)


def coloured_ink(x, rng):
    """Coloured ink (red, green, blue, purple, black) on tinted paper (yellow, pink, green, blue, buff)."""
    s = rng.uniform(3, 5)
    cover = _margin_page(x, rng, s, (int(2 * s), int(8 * s)))[..., None]
    ink = INKS[rng.integers(len(INKS))] * rng.uniform(0.8, 1.1)
    paper = TINTS[rng.integers(len(TINTS))] + rng.normal(0, 4, 3)
    rgb = paper * (1 - cover) + ink * cover + rng.normal(0, 3, cover.shape[:2] + (3,))
    return _encode(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"), "JPEG", quality=90)


def phone_photo(x, rng, size: tuple[int, int] = (1200, 1600)):
    """A phone photo of a written digit: large frame, vignetting, colour cast, focus blur, noise, JPEG."""
    h, w = size
    s = rng.uniform(0.15, 0.35) * h / 20  # the digit's 20 px box becomes 15-35% of the frame's height
    ink = _ink(x, s)
    ih, iw = ink.shape
    cover = _place(ink, (h, w), int(rng.integers(0, h - ih)), int(rng.integers(0, w - iw)))
    yy = ((np.arange(h, dtype=np.float32) - h / 2) / h) ** 2  # by broadcasting: the same values as a full grid
    xx = ((np.arange(w, dtype=np.float32) - w / 2) / w) ** 2
    vignette = 1 - rng.uniform(0.2, 0.45) * (yy[:, None] + xx[None, :]) * 2
    cast = np.array([1.0, rng.uniform(0.92, 1.0), rng.uniform(0.8, 0.95)], np.float32)
    rgb = (_on_paper(cover, paper=rng.uniform(200, 240), ink=rng.uniform(30, 70)) * vignette)[..., None] * cast
    img = Image.fromarray(np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8), "RGB")
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))
    return _encode(img, "JPEG", quality=int(rng.integers(60, 90)))


def stained_paper(x, rng):
    """Old, yellowed paper with a broad brownish stain (tea, water, age) over part of the page."""
    s = rng.uniform(3, 5)
    cover = _margin_page(x, rng, s, (int(3 * s), int(10 * s)))
    h, w = cover.shape
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(0.2, 0.5) * h, rng.uniform(0.2, 0.5) * w
    stain = np.exp(-((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) ** 2)) * rng.uniform(0.2, 0.4)
    paper = np.array([235, 220, 180], np.float32) * (1 - stain[..., None] * np.array([0.5, 0.8, 1.2], np.float32))
    ink = np.array([60, 40, 30], np.float32)
    rgb = paper * (1 - cover[..., None]) + ink * cover[..., None] + rng.normal(0, 5, (h, w, 3))
    return _encode(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"), "JPEG", quality=80)


def chalk_on_board(x, rng):
    """Chalk on a blackboard, photographed: light grainy ink on dark paper, light falling off sideways."""
    s = rng.uniform(4, 6)
    cover = _margin_page(x, rng, s, (int(4 * s), int(12 * s)))
    h, w = cover.shape
    light = 1 - rng.uniform(0.2, 0.45) * np.mgrid[0:h, 0:w][1] / w
    grain = np.clip(rng.normal(1, 0.3, cover.shape), 0, 1.5)
    page = (rng.uniform(30, 60) * (1 - cover) + rng.uniform(180, 230) * cover * grain) * light
    return _encode(_grey(page + rng.normal(0, 4, cover.shape)), "JPEG", quality=75)


def small_in_photo(x, rng, size: tuple[int, int] = (900, 1200)):
    """A photo of a whole sheet with the digit small in it (6-10% of the frame's height)."""
    h, w = size
    ink = _ink(x, rng.uniform(0.06, 0.1) * h / 20)
    ih, iw = ink.shape
    cover = _place(ink, (h, w), int(rng.integers(0, h - ih)), int(rng.integers(0, w - iw)))
    page = _on_paper(cover, paper=rng.uniform(200, 230), ink=rng.uniform(30, 70)) + rng.normal(0, 4, (h, w))
    return _encode(_grey(page).filter(ImageFilter.GaussianBlur(1.0)), "JPEG", quality=80)


def _desk(shape: tuple[int, int], rng) -> np.ndarray:
    """A desk or table top, darker than paper: a plain or wood-grained surface, in colour."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(8, 40)
    wave = np.sin(2 * np.pi * (yy * np.cos(angle) + xx * np.sin(angle)) / period + rng.uniform(0, 3) * np.sin(yy / 97))
    grey = rng.uniform(25, 150) + rng.uniform(0, 20) * wave
    tint = np.array([1.0, rng.uniform(0.75, 1.0), rng.uniform(0.55, 1.0)], np.float32)
    return grey[..., None] * tint


def _sheet_photo(cover: np.ndarray, rng, size: tuple[int, int] = (900, 1200)) -> bytes:
    """`cover` written on a sheet of paper lying on a desk, turned up to 30 degrees, photographed."""
    h, w = size
    paper = np.array([rng.uniform(205, 245)] * 3, np.float32) * np.array([1.0, 1.0, rng.uniform(0.8, 1.0)], np.float32)
    sheet = paper * (1 - cover[..., None]) + rng.uniform(25, 70) * cover[..., None]
    img = Image.fromarray(np.clip(sheet, 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    img = img.rotate(rng.uniform(-30, 30), resample=Image.Resampling.BICUBIC, expand=True)
    desk = Image.fromarray(np.clip(_desk((h, w), rng), 0, 255).astype(np.uint8), "RGB")
    desk.paste(img, (int(rng.integers(0, w - img.width)), int(rng.integers(0, h - img.height))), img)
    light = 1 - rng.uniform(0.1, 0.35) * np.mgrid[0:h, 0:w][1 if rng.random() < 0.5 else 0] / max(h, w)
    rgb = np.asarray(desk, np.float32) * light[..., None] + rng.normal(0, 3, (h, w, 3))
    photo = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return _encode(photo, "JPEG", quality=int(rng.integers(60, 90)))


def _sheet_size(rng, h: int = 900) -> tuple[int, int]:
    """A note to a sheet: 30-60% of the frame's height, up to 1.45 times as wide as high (turned, it fits)."""
    sh = int(rng.uniform(0.3, 0.6) * h)
    return sh, int(sh * rng.uniform(0.85, 1.45))


def sheet_on_desk(x, rng):
    """A phone photo of a note or a sheet with the digit on it, lying on a darker desk that fills most of the
    frame (the sheet: 8-40% of it)."""
    sh, sw = _sheet_size(rng)
    ink = _ink(x, rng.uniform(0.3, 0.6) * sh / 20)  # the digit's 20 px box: 30-60% of the sheet's height
    ih, iw = ink.shape
    cover = _place(ink, (sh, sw), int(rng.integers(0, sh - ih + 1)), int(rng.integers(0, sw - iw + 1)))
    return _sheet_photo(cover, rng)


REAL_KINDS: dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "form box around the digit": form_box,
    "ruled paper": ruled_paper,
    "squared paper": squared_paper,
    "light gradient or shadow": light_gradient,
    "tight crop stretched to 16x16": tight_16,
    "bold marker": bold_marker,
    "neighbour slivers at the edges": neighbour_slivers,
    "specks and dirt": specks_and_dirt,
    "pencil on grey paper": pencil_grey_paper,
    "coloured ink on tinted paper": coloured_ink,
    "phone photo (blur, noise, JPEG)": phone_photo,
    "stained, yellowed paper": stained_paper,
    "chalk on a blackboard (photo)": chalk_on_board,
    "small digit in a photo of a sheet": small_in_photo,
    "sheet on a desk (photo)": sheet_on_desk,
}
KINDS.update(REAL_KINDS)


# --- Images with no digit: the front end must refuse these (and only these) --------------------------------


def blank_paper(rng):
    h, w = int(rng.integers(40, 300)), int(rng.integers(40, 300))
    yy = np.mgrid[0:h, 0:w][0] / h
    page = rng.uniform(200, 250) * (1 - rng.uniform(0, 0.3) * yy) + rng.normal(0, rng.uniform(1, 6), (h, w))
    return _encode(_grey(page))


def lines_only(rng):
    h, w = int(rng.integers(60, 200)), int(rng.integers(60, 200))
    kind = rng.integers(3)
    if kind == 0:  # ruled
        cover = _lines((h, w), rng, True, rng.uniform(20, 40), int(rng.integers(1, 3)), rng.uniform(0, 20), 0.0)
    elif kind == 1:  # squared
        sp = rng.uniform(15, 30)
        cover = np.maximum(_lines((h, w), rng, True, sp, 1, rng.uniform(0, sp), 0.0),
                           _lines((h, w), rng, False, sp, 1, rng.uniform(0, sp), 0.0))
    else:  # an empty form box
        cover = np.zeros((h, w), np.float32)
        m, t = int(rng.integers(0, 10)), int(rng.integers(1, 4))
        cover[m : m + t, m : w - m] = cover[h - m - t : h - m, m : w - m] = 1
        cover[m : h - m, m : m + t] = cover[m : h - m, w - m - t : w - m] = 1
    return _encode(_grey(_on_paper(cover, paper=rng.uniform(230, 250), ink=rng.uniform(40, 160))))


def specks_only(rng):
    h, w = int(rng.integers(60, 300)), int(rng.integers(60, 300))
    yy, xx = np.mgrid[0:h, 0:w]
    cover = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(3, 25))):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.5, 0.012 * max(h, w) + 1)
        cover = np.maximum(cover, ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32))
    return _encode(_grey(_on_paper(cover, paper=rng.uniform(225, 250))))


def blank_sheet_on_desk(rng):
    return _sheet_photo(np.zeros(_sheet_size(rng), np.float32), rng)


EMPTY_KINDS: dict[str, Callable[[np.random.Generator], bytes]] = {
    "blank paper": blank_paper,
    "printed lines only": lines_only,
    "specks only": specks_only,
    "blank sheet on a desk (photo)": blank_sheet_on_desk,
}
