"""Decode an uploaded image and normalise it the way MNIST was made (pure: Pillow and NumPy only).

Steps: decode (format and pixel limits checked before the pixels are read) -> grey level with
transparency composited -> polarity (ink high) -> background removal -> crop to the ink ->
thicken thin strokes -> fit 20x20 keeping the aspect ratio -> place in 28x28 by centre of mass.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFilter, ImageOps

ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
SUPPORTED = "PNG, JPEG, GIF, BMP, TIFF or WebP"
BOX = 20  # MNIST fits each digit into 20x20 ...
SIZE = 28  # ... and centres its mass in 28x28
CENTRE = 14.0  # mean centre of mass of MNIST test digits, in pixel indices (measured: 13.99, 14.01)
INK_THRESHOLD = 0.25  # after background removal, fainter pixels are paper noise
MIN_STROKE = 1.8  # px at 20x20 scale: the median MNIST stroke, measured the same way (10th-90th percentile 1.4-2.7)


class ImageError(ValueError):
    """An input that cannot be turned into a digit; code and status say why."""

    code = "invalid_image"
    status = 422

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class UnsupportedFormat(ImageError):
    code = "unsupported_media_type"
    status = 415


class ImageTooLarge(ImageError):
    code = "image_too_large"
    status = 413


class EmptyFile(ImageError):
    code = "empty_file"


class NotAnImage(ImageError):
    code = "not_an_image"


class TruncatedImage(ImageError):
    code = "truncated_image"


class NoDigitFound(ImageError):
    code = "no_digit_found"
    status = 422


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open and load an image, refusing unknown formats and huge dimensions before decoding pixels."""
    if not data:
        raise EmptyFile("the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own cap (twice MAX_IMAGE_PIXELS errors, above it warns: made an error above)
        raise ImageTooLarge(f"the image's dimensions are over the limit of {max_pixels} pixels") from None
    except Image.UnidentifiedImageError:
        other = _other_format(data)
        if other:
            raise UnsupportedFormat(f"{other} images are not supported; send {SUPPORTED}") from None
        raise NotAnImage(f"the file is not an image; send {SUPPORTED}") from None
    except Exception as exc:  # Pillow raises many types on garbage headers
        raise NotAnImage(f"cannot read the image header: {exc}") from None
    width, height = img.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} pixels; the limit is {max_pixels} pixels")
    if width < 1 or height < 1:
        raise ImageError("image has no pixels")
    try:
        img.seek(0)  # first frame of an animation
        img.load()
        img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from None
    except Exception as exc:
        raise TruncatedImage(f"the image data is damaged or truncated: {exc}") from None
    return img


def _other_format(data: bytes) -> str | None:
    """Name an image format that is recognised but not accepted (SVG, PDF, ICO, ...), else None."""
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    if head.startswith(b"%pdf"):
        return "PDF"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "HEIF/AVIF"
    try:
        with Image.open(io.BytesIO(data)) as other:
            return other.format or "this"
    except Exception:
        return None


def to_grey(img: Image.Image) -> np.ndarray:
    """Grey level in [0,1] as float32; transparency composited onto a paper that contrasts with the ink."""
    if img.mode == "LAB":  # Pillow cannot convert LAB (TIFF); its L channel is the lightness
        img = img.getchannel("L")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return np.clip(arr / top, 0.0, 1.0)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        return np.clip(arr / max(float(arr.max()), 1e-6), 0.0, 1.0)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if not has_alpha:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    alpha = rgba[..., 3]
    grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if alpha.min() > 0.99:
        return grey
    opaque = alpha.sum()
    ink_level = float((grey * alpha).sum() / opaque) if opaque > 0 else 0.0
    paper = 1.0 if ink_level < 0.5 else 0.0  # dark ink goes on white paper, light ink on black
    return grey * alpha + paper * (1.0 - alpha)


def _quantile(hist: np.ndarray, q: float) -> int:
    """The grey level (0-255) at quantile q of a 256-bin histogram (a cheap median for uint8 data)."""
    cumulative = np.cumsum(hist)
    return int(np.searchsorted(cumulative, q * cumulative[-1]))


def _paper_stats(levels: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Histogram of 0-255 levels, the background level (median), and the noise (scaled MAD, in [0,1])."""
    hist = np.bincount(levels.ravel(), minlength=256)
    background = _quantile(hist, 0.5)
    deviations = np.bincount(np.abs(np.arange(256) - background), weights=hist, minlength=256)
    return hist, background, 1.4826 * _quantile(deviations, 0.5) / 255.0


def ink_map(grey: np.ndarray, ink_high: bool | None = None) -> np.ndarray:
    """Ink intensity in [0,1] with the paper removed: decide polarity, subtract background, drop noise."""
    if ink_high is None:  # the paper is what most of the border shows: dark paper means light ink
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]) if min(grey.shape) > 2 else grey.ravel()
        ink_high = 2 * np.count_nonzero(border < 0.5) > border.size
    levels = np.rint((grey if ink_high else 1.0 - grey) * 255.0).astype(np.uint8)
    hist, background, noise = _paper_stats(levels)
    if noise > 0.02 and min(levels.shape) >= 16:  # grainy paper or sensor noise: smooth specks away first
        levels = np.asarray(Image.fromarray(levels).filter(ImageFilter.MedianFilter(3)))
        hist, background, noise = _paper_stats(levels)
    above = hist[background + 1 :]
    if not above.any():
        return np.zeros(levels.shape, np.float32)
    top = (_quantile(above, 0.99) + 1) / 255.0  # strong ink, above the paper
    if top < 0.1 or top < 6 * noise:  # nothing stands out from the paper
        return np.zeros(levels.shape, np.float32)
    ink = np.clip((levels.astype(np.float32) - background) / (255.0 * top), 0.0, 1.0)
    ink[ink < max(INK_THRESHOLD, 4 * noise / top)] = 0.0
    return ink


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary shape: twice its area over its perimeter (pixel edges)."""
    padded = np.pad(mask, 1)
    perimeter = int((padded[1:, :] != padded[:-1, :]).sum() + (padded[:, 1:] != padded[:, :-1]).sum())
    return 2.0 * float(mask.sum()) / max(perimeter, 1)


def _thicken(patch: np.ndarray) -> np.ndarray:
    """Dilate strokes that would be thinner than MNIST's once the digit is scaled to fit 20x20."""
    h, w = patch.shape
    scale = BOX / max(h, w)
    if scale >= 1:  # never thinner than drawn
        return patch
    width_after = _stroke_width(patch > 0.5) * scale
    if width_after >= MIN_STROKE:
        return patch
    size = min(2 * int(round((MIN_STROKE - width_after) / scale / 2)) + 1, 15)
    if size < 3:
        return patch
    pad = size // 2
    padded = np.pad((patch * 255).astype(np.uint8), pad)
    grown = np.asarray(Image.fromarray(padded).filter(ImageFilter.MaxFilter(size)), dtype=np.float32) / 255.0
    return _crop(grown)


def _crop(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise NoDigitFound("no digit found: the image is blank or has no ink that stands out")
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fit_digit(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, thicken thin strokes, fit 20x20 (aspect kept), centre by mass in 28x28: uint8."""
    crop = _crop(ink)
    if max(crop.shape) > 4 * BOX:  # shrink large drawings by area first; faint thin strokes are re-strengthened
        f = 4 * BOX / max(crop.shape)
        size = (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f)))
        img = Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX)
        crop = np.asarray(img, dtype=np.float32)
        crop = np.clip(crop / max(float(crop.max()), 1e-6) * 1.5, 0.0, 1.0)
        crop[crop < 0.05] = 0.0
        crop = _crop(crop)
    crop = _thicken(crop)
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    patch = Image.fromarray((crop * 255).astype(np.uint8), mode="L")
    small = np.asarray(patch.resize((new_w, new_h), Image.Resampling.LANCZOS), dtype=np.float32)
    if small.max() <= 0:
        raise NoDigitFound("no digit found: the ink vanishes at 28x28")
    small = small * (255.0 / small.max())
    total = small.sum()
    ci = float(small.sum(axis=1) @ np.arange(new_h)) / total
    cj = float(small.sum(axis=0) @ np.arange(new_w)) / total
    top = int(np.clip(round(CENTRE - ci), 0, SIZE - new_h))
    left = int(np.clip(round(CENTRE - cj), 0, SIZE - new_w))
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = small
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def normalise_bytes(data: bytes, max_pixels: int = 40_000_000) -> np.ndarray:
    """Encoded image bytes -> MNIST-style uint8 [28,28], ink high. Raises ImageError."""
    img = open_image(data, max_pixels)
    try:
        grey = to_grey(img)
    except (ValueError, OSError) as exc:  # a mode Pillow opens but cannot convert
        raise UnsupportedFormat(f"images in mode {img.mode} are not supported: {exc}") from None
    return fit_digit(ink_map(grey))


def normalise_pixels(pixels: np.ndarray) -> np.ndarray:
    """A 2-D array of 0-255 values, ink high (the API's `pixels`) -> MNIST-style uint8 [28,28]."""
    grey = np.asarray(pixels, dtype=np.float32) / 255.0
    return fit_digit(ink_map(grey, ink_high=True))


def to_png(digit: np.ndarray) -> bytes:
    """A 28x28 uint8 digit as PNG bytes (thumbnails, and what the model saw)."""
    buf = io.BytesIO()
    Image.fromarray(digit, mode="L").save(buf, format="PNG")
    return buf.getvalue()
