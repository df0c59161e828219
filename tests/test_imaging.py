"""Decoding and MNIST-style normalisation (pure functions, no services)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from digitflow import imaging
from digitflow.imaging import ImageTooLarge, NoDigitFound, normalise_bytes, normalise_pixels, to_png


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def centre_of_mass(d: np.ndarray) -> tuple[float, float]:
    ii, jj = np.mgrid[0:28, 0:28]
    return float((d * ii).sum() / d.sum()), float((d * jj).sum() / d.sum())


def test_mnist_digits_pass_through_almost_unchanged(mnist_test):
    x, _ = mnist_test
    diffs = [np.abs(normalise_pixels(x[i]).astype(int) - x[i]).mean() for i in range(200)]
    assert np.mean(diffs) < 4  # grey levels out of 255


def test_dark_ink_on_light_paper_is_inverted_cropped_and_centred(mnist_test):
    x, _ = mnist_test
    canvas = np.full((300, 400), 255, np.uint8)
    big = np.asarray(Image.fromarray(x[0]).resize((112, 112), Image.Resampling.BICUBIC))
    canvas[20:132, 250:362] = 255 - big
    out = normalise_bytes(encode(Image.fromarray(canvas)))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out[0].max() == 0 and out[:, 0].max() == 0  # paper became background
    rows, cols = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == 20  # fitted to 20 pixels
    ci, cj = centre_of_mass(out.astype(float))
    assert abs(ci - 14) < 1 and abs(cj - 14) < 1


def test_transparent_background_is_composited(mnist_test):
    x, _ = mnist_test
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = x[0]  # black ink, opaque only where drawn
    out = normalise_bytes(encode(Image.fromarray(rgba, "RGBA")))
    assert np.corrcoef(out.ravel(), normalise_pixels(x[0]).ravel())[0, 1] > 0.95


def test_thin_strokes_are_thickened():
    img = np.full((400, 400), 255, np.uint8)
    img[50:350, 198:201] = 0  # a 3-pixel pen line, 300 pixels tall
    out = normalise_bytes(encode(Image.fromarray(img)))
    assert (out > 128).sum(axis=1).max() >= 2  # at least two pixels wide at 28x28


@pytest.mark.parametrize("pixels", [np.full((50, 50), 255), np.zeros((50, 50)), np.full((1, 1), 255)])
def test_blank_images_are_no_digit(pixels):
    with pytest.raises(NoDigitFound):
        normalise_bytes(encode(Image.fromarray(pixels.astype(np.uint8))))


def test_huge_dimensions_are_refused_before_decoding():
    with pytest.raises(ImageTooLarge):
        imaging.open_image(encode(Image.new("1", (8000, 8000))), max_pixels=1_000_000)


def test_formats_and_modes_decode(mnist_test):
    x, _ = mnist_test
    grey = Image.fromarray(255 - x[0]).resize((56, 56))
    variants = {
        "jpeg": encode(grey.convert("RGB"), "JPEG"),
        "cmyk": encode(grey.convert("CMYK"), "JPEG"),
        "gif": encode(grey.convert("P"), "GIF"),
        "bmp": encode(grey, "BMP"),
        "tiff": encode(grey, "TIFF"),
        "webp": encode(grey, "WEBP", lossless=True),
        "i16": encode(Image.fromarray(np.asarray(grey, np.uint16) * 257), "PNG"),
    }
    reference = normalise_bytes(encode(grey))
    for name, data in variants.items():
        out = normalise_bytes(data)
        assert np.corrcoef(out.ravel(), reference.ravel())[0, 1] > 0.9, name


def test_exif_orientation_is_applied(mnist_test):
    x, _ = mnist_test
    upright = Image.fromarray(255 - x[0]).resize((56, 56))
    rotated = upright.transpose(Image.Transpose.ROTATE_90)  # stored turned 90 degrees anticlockwise ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with the tag that says "turn 90 degrees clockwise to display"
    out = normalise_bytes(encode(rotated.convert("RGB"), "JPEG", exif=exif.tobytes(), quality=95))
    assert np.corrcoef(out.ravel(), normalise_bytes(encode(upright)).ravel())[0, 1] > 0.9


def test_png_round_trip():
    d = np.arange(784, dtype=np.uint8).reshape(28, 28)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(to_png(d)))), d)
