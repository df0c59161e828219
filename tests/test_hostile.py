"""Hostile inputs (issue 6): every row of the table, each answered with its status and error code, and
the service healthy afterwards. All inputs are built here, in code: zip bombs, lying headers, path tricks,
broken images, decompression bombs, bad JSON. Cases "over a limit" run against an extra web process with
small limits and API_TOKEN set (sharing the session's Redis and workers), so they stay cheap."""

from __future__ import annotations

import base64
import io
import struct
import tempfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import ROOT, Stack, all_results, mnist_dir, wait_job

TOKEN = "hostile-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The web process with small limits: every "over the limit" case costs kilobytes, not gigabytes.
STRICT_ENV = {
    "MAX_REQUEST_BYTES": "200000",
    "MAX_JSON_BYTES": "20000",
    "MAX_ZIP_ENTRIES": "5",
    "MAX_TOTAL_UNCOMPRESSED": "50000",
    "MAX_ENTRY_BYTES": "20000",
    "API_TOKEN": TOKEN,
    "RATE_LIMIT": "",
}


@pytest.fixture(scope="module")
def strict(stack, redis_url, tmp_path_factory) -> str:
    """A second web process with small limits and API_TOKEN set; same Redis, same workers."""
    web = Stack({"REDIS_URL": redis_url, **STRICT_ENV}, tmp_path_factory.mktemp("strict-web"))
    web.start("web")
    web.wait_ready()
    yield web.url
    web.stop_all()


# ---------------------------------------------------------------------------------------------------------
# Builders of hostile inputs


@cache
def mnist() -> tuple[np.ndarray, np.ndarray]:
    from model_training.data import load_test_split

    return load_test_split(mnist_dir())


def png(arr: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **save)
    return buf.getvalue()


def digit(i: int = 0) -> bytes:
    """A clean MNIST digit as PNG (about 300 bytes)."""
    return png(mnist()[0][i])


def paper(i: int = 0) -> np.ndarray:
    """MNIST digit i as a scan: black ink on white paper, 112x112."""
    return 255 - np.kron(mnist()[0][i], np.ones((4, 4), np.uint8))


def encode(img: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def animated_gif() -> bytes:
    frames = [Image.fromarray(paper(0)), Image.fromarray(paper(1)), Image.fromarray(paper(2))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    return data


def cmyk_jpeg() -> bytes:
    data = encode(Image.fromarray(paper(0)).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    return data


def png_16bit() -> bytes:
    data = encode(Image.fromarray(paper(0).astype(np.uint16) * 257), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    return data


def palette_png_with_transparency() -> bytes:
    img = Image.fromarray((paper(0) < 128).astype(np.uint8), "P")  # index 1: ink, index 0: paper
    img.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    data = encode(img, "PNG", transparency=0)  # the paper is transparent
    reopened = Image.open(io.BytesIO(data))
    assert reopened.mode == "P" and reopened.info["transparency"] == 0
    return data


def canvas_rgba_png() -> bytes:
    """What a browser canvas exports: black strokes, everything else fully transparent."""
    rgba = np.zeros((112, 112, 4), np.uint8)
    rgba[..., 3] = 255 - paper(0)
    return png(rgba)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">L", len(payload)) + kind + payload + struct.pack(">L", zlib.crc32(kind + payload))


def png_bomb(width: int, height: int) -> bytes:
    """A ~100-byte PNG declaring width x height grey pixels (its pixel data would not even be there)."""
    ihdr = struct.pack(">LLBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(bytes(64)))
            + _png_chunk(b"IEND", b""))


def gif_bomb() -> bytes:
    """A 30-byte GIF declaring a 65535x65535 screen and frame."""
    return (b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0) + b","
            + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00;")


def zip_of(entries: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP of (name, data) in order; duplicate names allowed."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return buf.getvalue()


def zip_headers(data: bytes) -> list[tuple[int, int, bytes]]:
    """(local header offset, central header offset, raw name) of each entry of a small, plain ZIP."""
    eocd = data.rfind(b"PK\x05\x06")
    count, _size, start = struct.unpack_from("<HLL", data, eocd + 10)
    out, pos = [], start
    for _ in range(count):
        assert data[pos : pos + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack_from("<3H", data, pos + 28)
        local = struct.unpack_from("<L", data, pos + 42)[0]
        out.append((local, pos, data[pos + 46 : pos + 46 + name_len]))
        pos += 46 + name_len + extra_len + comment_len
    return out


def patch_zip(data: bytes, which: Callable[[bytes], bool], *, flags_or: int = 0, file_size: int | None = None,
              name: bytes | None = None, central_version: int | None = None, corrupt_data: bool = False) -> bytes:
    """Rewrite header fields of the entries whose raw name matches, in local and central headers alike."""
    out = bytearray(data)
    for local, central, raw in zip_headers(data):
        if not which(raw):
            continue
        # (header offset, where its flags, uncompressed size and name are)
        for off, flags_at, size_at, name_at in ((local, 6, 22, 30), (central, 8, 24, 46)):
            flags = struct.unpack_from("<H", out, off + flags_at)[0]
            struct.pack_into("<H", out, off + flags_at, flags | flags_or)
            if file_size is not None:
                struct.pack_into("<L", out, off + size_at, file_size)
            if name is not None:
                assert len(name) == len(raw)
                out[off + name_at : off + name_at + len(raw)] = name
        if central_version is not None:
            struct.pack_into("<H", out, central + 6, central_version)  # "version needed to extract"
        if corrupt_data:
            name_len, extra_len = struct.unpack_from("<2H", out, local + 26)
            out[local + 30 + name_len + extra_len] = 0xFF  # a DEFLATE block of the reserved type 11
    return bytes(out)


def zip_with_raw_name(raw: bytes, utf8_flag: bool) -> bytes:
    """A ZIP whose first entry's name is the given bytes (not valid UTF-8), flagged UTF-8 or not."""
    placeholder = "n" * len(raw)
    data = zip_of([(placeholder, digit(0)), ("ok.png", digit(1))])
    return patch_zip(data, lambda n: n == placeholder.encode(), name=raw, flags_or=0x800 if utf8_flag else 0)


def ratio_bomb() -> bytes:
    """2 MB of zeros deflates to ~2 KB: a ratio of ~1000:1 (the limit is 200:1)."""
    return zip_of([("bomb.png", bytes(2_000_000)), ("ok.png", digit(0))])


def lying_bomb() -> bytes:
    """The same bomb whose headers say it holds 1,000 bytes, which passes the ratio check."""
    return patch_zip(ratio_bomb(), lambda n: n == b"bomb.png", file_size=1000)


def noise(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# ---------------------------------------------------------------------------------------------------------
# Requests


def job(name: str, data: bytes, mime: str = "application/zip") -> dict:
    return {"method": "POST", "path": "/api/v1/jobs", "files": {"file": (name, data, mime)}}


def image(data: bytes, name: str = "digit.png", field: str = "image") -> dict:
    return {"method": "POST", "path": "/api/v1/predict", "files": {field: (name, data, "application/octet-stream")}}


def as_json(body) -> dict:
    return {"method": "POST", "path": "/api/v1/predict", "json": body}


def raw_json(text: str) -> dict:
    return {"method": "POST", "path": "/api/v1/predict", "data": text.encode(),
            "headers": {"Content-Type": "application/json"}}


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def grid(value, rows: int = 28, cols: int = 28) -> list[list]:
    return [[value] * cols for _ in range(rows)]


def chunked(total: int, piece: int = 10_000):
    """A body sent with Transfer-Encoding: chunked (no Content-Length for the server to check first)."""
    def body():
        for start in range(0, total, piece):
            yield noise(min(piece, total - start), start)
    return body()


def get(path: str) -> dict:
    return {"method": "GET", "path": path}


def callback(url: str) -> dict:
    """A valid one-image job with a callback URL."""
    return {**job("a.png", digit(0), "image/png"), "data": {"callback_url": url}}


# ---------------------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Case:
    id: str
    row: str  # the row of issue 6's table this case covers
    send: Callable[[Ctx], dict]  # -> requests.request(**kwargs) with "method" and "path"
    status: int
    code: str | None = None  # the error code of a refused request
    items: list[tuple[str, str | None]] | None = None  # an accepted job: (filename, error code or None) in order
    digit: int | None = None  # a 200 prediction of this MNIST test digit's label
    strict: bool = False  # sent to the web process with small limits and API_TOKEN
    auth: dict | None = field(default=None)  # headers replacing the token on the strict process


@dataclass
class Ctx:
    base: str
    headers: dict
    jobs: list[str] = field(default_factory=list)

    def existing_job(self) -> str:
        """A finished job on this process, so that 401 answers can be checked for leaks."""
        r = requests.post(f"{self.base}/api/v1/jobs", files={"file": ("a.png", digit(0))}, headers=self.headers,
                          timeout=30)
        assert r.status_code == 202, r.text
        self.jobs.append(wait_job(self.base, r.json()["id"], timeout=60, headers=self.headers)["id"])
        return self.jobs[-1]


JUNK = [("folder/", b""), ("folder/sub/", b""), ("__MACOSX/._a.png", b"\x00\x05\x16\x07"),
        ("__MACOSX/folder/._b.png", b"x"), (".DS_Store", b"junk"), ("folder/.hidden.png", b"x")]
UNKNOWN = "0123456789abcdef" * 2
NAMES = "names with ../, absolute paths, backslashes, non-UTF-8 bytes, duplicates"

CASES = [
    # body over the limit -> 413 payload_too_large
    Case("body-over-limit-jobs", "body over the limit", lambda c: job("big.zip", noise(300_000)), 413,
         "payload_too_large", strict=True),
    Case("body-over-limit-predict", "body over the limit", lambda c: image(noise(300_000)), 413,
         "payload_too_large", strict=True),
    Case("body-over-limit-chunked", "body over the limit",
         lambda c: {"method": "POST", "path": "/api/v1/jobs", "data": chunked(300_000),
                    "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}},
         413, "payload_too_large", strict=True),
    Case("image-over-file-limit", "body over the limit", lambda c: image(noise(25_000)), 413, "file_too_large",
         strict=True),
    # not a ZIP, truncated ZIP, every entry encrypted -> 422 invalid_archive
    Case("not-a-zip", "not a ZIP", lambda c: job("photos.zip", b"this is not a zip archive"), 422, "invalid_archive"),
    Case("zip-magic-then-garbage", "not a ZIP", lambda c: job("x.bin", b"PK\x03\x04" + noise(500)), 422,
         "invalid_archive"),
    Case("truncated-zip", "truncated ZIP", lambda c: job("t.zip", zip_of([("a.png", digit(0))] * 3)[:400]), 422,
         "invalid_archive"),
    Case("every-entry-encrypted", "every entry encrypted",
         lambda c: job("e.zip", patch_zip(zip_of([("a.png", digit(0)), ("b.png", digit(1))]), bool, flags_or=0x1)),
         422, "invalid_archive"),
    Case("unsupported-zip-version", "not a ZIP",
         lambda c: job("v.zip", patch_zip(zip_of([("a.png", digit(0))]), bool, central_version=99)), 422,
         "invalid_archive"),
    # empty ZIP; only folders, __MACOSX/, dotfiles -> 422 no_images (junk is skipped, never counted)
    Case("empty-zip", "empty ZIP", lambda c: job("empty.zip", zip_of([])), 422, "no_images"),
    Case("only-folders", "only folders", lambda c: job("f.zip", zip_of(JUNK[:2])), 422, "no_images"),
    Case("only-macosx", "only __MACOSX/", lambda c: job("m.zip", zip_of(JUNK[2:4])), 422, "no_images"),
    Case("only-dotfiles", "only dotfiles", lambda c: job("d.zip", zip_of(JUNK[4:])), 422, "no_images"),
    Case("junk-is-not-counted", "only folders, __MACOSX/, dotfiles",
         lambda c: job("j.zip", zip_of([JUNK[0], ("folder/a.png", digit(0)), *JUNK[1:], ("b.png", digit(1))])),
         202, items=[("folder/a.png", None), ("b.png", None)]),
    Case("junk-not-counted-against-entry-limit", "more entries than the limit",
         lambda c: job("j.zip", zip_of([(f"{i}.png", digit(i)) for i in range(5)] + JUNK * 2)), 202,
         items=[(f"{i}.png", None) for i in range(5)], strict=True),
    # more entries than the limit; total uncompressed over the limit -> 413 with a specific code
    Case("too-many-entries", "more entries than the limit",
         lambda c: job("n.zip", zip_of([(f"{i}.png", digit(i)) for i in range(6)])), 413, "too_many_entries",
         strict=True),
    Case("total-uncompressed-over-limit", "total uncompressed over the limit",
         lambda c: job("t.zip", zip_of([(f"{i}.png", bytes(15_000)) for i in range(4)])), 413, "archive_too_large",
         strict=True),
    # one entry over its size or ratio limit, or whose header lies about its size -> a per-image error
    Case("entry-over-size-limit", "one entry over its size limit",
         lambda c: job("s.zip", zip_of([("big.png", noise(25_000)), ("ok.png", digit(0))])), 202,
         items=[("big.png", "entry_too_large"), ("ok.png", None)], strict=True),
    Case("file-over-size-limit", "one entry over its size limit",
         lambda c: {"method": "POST", "path": "/api/v1/jobs",
                    "files": [("file", ("big.png", noise(25_000))), ("file", ("ok.png", digit(0)))]},
         202, items=[("big.png", "entry_too_large"), ("ok.png", None)], strict=True),
    Case("zip-bomb-ratio", "one entry over its ratio limit", lambda c: job("bomb.zip", ratio_bomb()), 202,
         items=[("bomb.png", "compression_ratio_too_high"), ("ok.png", None)]),
    Case("header-lies-smaller", "header lies about its size", lambda c: job("lie.zip", lying_bomb()), 202,
         items=[("bomb.png", "corrupt_entry"), ("ok.png", None)]),
    Case("header-lies-larger", "header lies about its size",
         lambda c: job("lie.zip", patch_zip(zip_of([("lie.png", digit(0)), ("ok.png", digit(1))]),
                                            lambda n: n == b"lie.png", file_size=30_000_000)),
         202, items=[("lie.png", "entry_too_large"), ("ok.png", None)]),
    Case("corrupt-deflate-stream", "truncated ZIP",
         lambda c: job("c.zip", patch_zip(zip_of([("bad.png", digit(0)), ("ok.png", digit(1))]),
                                          lambda n: n == b"bad.png", corrupt_data=True)),
         202, items=[("bad.png", "corrupt_entry"), ("ok.png", None)]),
    Case("some-entries-encrypted", "every entry encrypted",
         lambda c: job("e.zip", patch_zip(zip_of([("a.png", digit(0)), ("b.png", digit(1))]),
                                          lambda n: n == b"a.png", flags_or=0x1)),
         202, items=[("a.png", "encrypted_entry"), ("b.png", None)]),
    Case("image-bomb-in-zip", "single image: decompression bomb",
         lambda c: job("b.zip", zip_of([("huge.png", png_bomb(100_000, 100_000)), ("ok.png", digit(0))])), 202,
         items=[("huge.png", "image_too_large"), ("ok.png", None)]),
    # nested ZIP -> a per-image error, not recursed into
    Case("nested-zip", "nested ZIP",
         lambda c: job("outer.zip", zip_of([("inner.zip", zip_of([("a.png", digit(0))])),
                                            ("inner.dat", zip_of([("b.png", digit(1))])), ("ok.png", digit(2))])),
         202, items=[("inner.zip", "nested_archive"), ("inner.dat", "nested_archive"), ("ok.png", None)]),
    # names: reported as given (made printable), nothing written to disk
    Case("name-dotdot", NAMES,
         lambda c: job("p.zip", zip_of([("../df-hostile-up.png", digit(0)), ("a/../../../df-hostile-up2.png", digit(1))])),
         202, items=[("../df-hostile-up.png", None), ("a/../../../df-hostile-up2.png", None)]),
    Case("name-absolute", NAMES,
         lambda c: job("p.zip", zip_of([("/df-hostile-root.png", digit(0)), ("/tmp/df-hostile-abs.png", digit(1))])),
         202, items=[("/df-hostile-root.png", None), ("/tmp/df-hostile-abs.png", None)]),
    Case("name-backslashes", NAMES,
         lambda c: job("p.zip", zip_of([("a\\b.png", digit(0)), ("..\\..\\df-hostile-bs.png", digit(1))])),
         202, items=[("a\\b.png", None), ("..\\..\\df-hostile-bs.png", None)]),
    Case("name-not-utf8", NAMES, lambda c: job("p.zip", zip_with_raw_name(b"caf\xe9.png", utf8_flag=False)), 202,
         items=[(b"caf\xe9.png".decode("cp437"), None), ("ok.png", None)]),  # unflagged names are CP437
    Case("name-flagged-utf8-but-not", NAMES, lambda c: job("p.zip", zip_with_raw_name(b"caf\xe9.png", utf8_flag=True)),
         202, items=[("caf\\xe9.png", None), ("ok.png", None)]),
    Case("name-duplicates", NAMES,
         lambda c: job("p.zip", zip_of([("dup.png", digit(0)), ("dup.png", digit(1)), ("DUP.png", digit(2))])), 202,
         items=[("dup.png", None), ("dup.png", None), ("DUP.png", None)]),
    Case("name-empty-after-nul", NAMES,  # zipfile cuts names at NUL: an empty name is skipped like a folder
         lambda c: job("p.zip", patch_zip(zip_of([("Xevil.png", digit(0)), ("ok.png", digit(1))]),
                                          lambda n: n == b"Xevil.png", name=b"\x00evil.png")),
         202, items=[("ok.png", None)]),
    Case("name-control-characters", NAMES,
         lambda c: job("p.zip", zip_of([("a\x1b[31m\n.png", digit(0)), ("tab\there.png", digit(1))])), 202,
         items=[("a\\x1b[31m\\x0a.png", None), ("tab\\x09here.png", None)]),
    # a form with no file; wrong field name -> 400 bad_request
    Case("form-without-file", "a form with no file",
         lambda c: {"method": "POST", "path": "/api/v1/jobs", "files": {"note": (None, "hello")}}, 400, "bad_request"),
    Case("form-empty-multipart", "a form with no file",
         lambda c: {"method": "POST", "path": "/api/v1/jobs", "data": b"--xyz--\r\n",
                    "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}}, 400, "bad_request"),
    Case("jobs-wrong-field", "wrong field name",
         lambda c: {"method": "POST", "path": "/api/v1/jobs", "files": {"files": ("a.png", digit(0))}}, 400,
         "bad_request"),
    Case("predict-wrong-field", "wrong field name", lambda c: image(digit(0), field="file"), 400, "bad_request"),
    Case("predict-form-without-file", "a form with no file",
         lambda c: {"method": "POST", "path": "/api/v1/predict", "files": {"image": (None, "not a file")}}, 400,
         "bad_request"),
    # wrong content type -> 415
    Case("jobs-text-plain", "wrong content type",
         lambda c: {"method": "POST", "path": "/api/v1/jobs", "data": b"hello", "headers": {"Content-Type": "text/plain"}},
         415, "unsupported_media_type"),
    Case("predict-text-plain", "wrong content type",
         lambda c: {"method": "POST", "path": "/api/v1/predict", "data": b"hello",
                    "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
    Case("predict-urlencoded", "wrong content type",
         lambda c: {"method": "POST", "path": "/api/v1/predict", "data": {"image": "x"}}, 415, "unsupported_media_type"),
    Case("jobs-raw-zip-body", "wrong content type",
         lambda c: {"method": "POST", "path": "/api/v1/jobs", "data": zip_of([("a.png", digit(0))]),
                    "headers": {"Content-Type": "application/zip"}}, 415, "unsupported_media_type"),
    # single image: zero bytes, truncated, text named .png -> 422 with a specific code
    Case("image-zero-bytes", "single image: zero bytes", lambda c: image(b""), 422, "empty_file"),
    Case("image-truncated", "single image: truncated", lambda c: image(png(paper(0))[:200]), 422, "truncated_image"),
    Case("image-text-named-png", "single image: text named .png",
         lambda c: image(b"hello, I am text\n" * 5, "digit.png"), 422, "not_an_image"),
    # single image: SVG or another unsupported format -> 415
    Case("image-svg", "single image: SVG",
         lambda c: image(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28">'
                         b'<path d="M5 5 L20 20" stroke="black"/></svg>', "seven.svg"), 415, "unsupported_media_type"),
    Case("image-ico", "single image: another unsupported format",
         lambda c: image(encode(Image.fromarray(paper(0)), "ICO"), "seven.png"), 415, "unsupported_media_type"),
    Case("image-pdf", "single image: another unsupported format",
         lambda c: image(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "seven.pdf"), 415,
         "unsupported_media_type"),
    # single image: decompression bomb -> 413/422 decided before decoding pixels
    Case("png-bomb-10g-pixels", "single image: decompression bomb", lambda c: image(png_bomb(100_000, 100_000)), 413,
         "image_too_large"),
    Case("png-bomb-100m-pixels", "single image: decompression bomb", lambda c: image(png_bomb(10_000, 10_000)), 413,
         "image_too_large"),
    Case("png-bomb-over-setting", "single image: decompression bomb", lambda c: image(png_bomb(7_000, 7_000)), 413,
         "image_too_large"),
    Case("gif-bomb", "single image: decompression bomb", lambda c: image(gif_bomb(), "bomb.gif"), 413,
         "image_too_large"),
    # single image: all white, all black, 1x1 -> 422 no_digit_found
    Case("image-all-white", "single image: all white", lambda c: image(png(np.full((64, 64), 255, np.uint8))), 422,
         "no_digit_found"),
    Case("image-all-black", "single image: all black", lambda c: image(png(np.zeros((64, 64), np.uint8))), 422,
         "no_digit_found"),
    Case("image-1x1", "single image: 1x1", lambda c: image(png(np.zeros((1, 1), np.uint8))), 422, "no_digit_found"),
    Case("image-1x1-ink", "single image: 1x1", lambda c: image(png(np.full((1, 1), 255, np.uint8))), 422,
         "no_digit_found"),
    Case("pixels-all-zero", "single image: all black", lambda c: as_json({"pixels": grid(0)}), 422, "no_digit_found"),
    # animated GIF, CMYK JPEG, 16-bit PNG, palette with transparency -> 200 with a prediction
    Case("animated-gif", "animated GIF", lambda c: image(animated_gif(), "a.gif"), 200, digit=0),
    Case("cmyk-jpeg", "CMYK JPEG", lambda c: image(cmyk_jpeg(), "a.jpg"), 200, digit=0),
    Case("png-16-bit", "16-bit PNG", lambda c: image(png_16bit()), 200, digit=0),
    Case("lab-tiff", "CMYK JPEG", lambda c: image(encode(Image.fromarray(paper(0)).convert("LAB"), "TIFF"), "a.tif"),
         200, digit=0),
    Case("palette-with-transparency", "palette with transparency", lambda c: image(palette_png_with_transparency()),
         200, digit=0),
    Case("canvas-rgba-transparent", "palette with transparency", lambda c: image(canvas_rgba_png()), 200, digit=0),
    # JSON: invalid base64, data URL of another type, pixels of the wrong shape, out of range, not numbers -> 422
    Case("json-invalid-base64", "JSON: invalid base64", lambda c: as_json({"image": "data:image/png;base64,@@not*base64!"}),
         422, "invalid_base64"),
    Case("json-base64-bad-padding", "JSON: invalid base64", lambda c: as_json({"image": "data:image/png;base64,abcde"}),
         422, "invalid_base64"),
    Case("json-data-url-text", "JSON: data URL of another type",
         lambda c: as_json({"image": data_url("text/plain", b"seven")}), 422, "unsupported_data_url"),
    Case("json-data-url-svg", "JSON: data URL of another type",
         lambda c: as_json({"image": data_url("image/svg+xml", b"<svg/>")}), 422, "unsupported_data_url"),
    Case("json-not-a-data-url", "JSON: data URL of another type",
         lambda c: as_json({"image": "https://example.com/seven.png"}), 422, "invalid_data_url"),
    Case("json-image-not-a-string", "JSON: data URL of another type", lambda c: as_json({"image": [1, 2, 3]}), 422,
         "invalid_data_url"),
    Case("json-data-url-not-an-image", "JSON: data URL of another type",
         lambda c: as_json({"image": data_url("image/png", b"hello")}), 422, "not_an_image"),
    Case("pixels-27-rows", "JSON: pixels of the wrong shape", lambda c: as_json({"pixels": grid(0, rows=27)}), 422,
         "invalid_pixels_shape"),
    Case("pixels-flat", "JSON: pixels of the wrong shape", lambda c: as_json({"pixels": [0] * 784}), 422,
         "invalid_pixels_shape"),
    Case("pixels-ragged", "JSON: pixels of the wrong shape",
         lambda c: as_json({"pixels": grid(0, rows=27) + [[0] * 29]}), 422, "invalid_pixels_shape"),
    Case("pixels-not-a-list", "JSON: pixels of the wrong shape", lambda c: as_json({"pixels": "0" * 784}), 422,
         "invalid_pixels_shape"),
    Case("pixels-over-255", "JSON: pixels out of range", lambda c: as_json({"pixels": grid(256)}), 422,
         "pixels_out_of_range"),
    Case("pixels-negative", "JSON: pixels out of range", lambda c: as_json({"pixels": grid(-1)}), 422,
         "pixels_out_of_range"),
    Case("pixels-nan", "JSON: pixels out of range",
         lambda c: raw_json('{"pixels": [' + ",".join(["[" + ",".join(["NaN"] * 28) + "]"] * 28) + "]}"), 422,
         "pixels_out_of_range"),
    Case("pixels-infinity", "JSON: pixels out of range",
         lambda c: raw_json('{"pixels": [' + ",".join(["[" + ",".join(["1e999"] * 28) + "]"] * 28) + "]}"), 422,
         "pixels_out_of_range"),
    Case("pixels-strings", "JSON: pixels not numbers", lambda c: as_json({"pixels": grid("12")}), 422,
         "invalid_pixels_value"),
    Case("pixels-booleans", "JSON: pixels not numbers", lambda c: as_json({"pixels": grid(True)}), 422,
         "invalid_pixels_value"),
    Case("pixels-nulls", "JSON: pixels not numbers", lambda c: as_json({"pixels": grid(None)}), 422,
         "invalid_pixels_value"),
    Case("json-not-json", "JSON: invalid base64", lambda c: raw_json('{"image": "data:'), 400, "bad_request"),
    Case("json-nested-too-deep", "JSON: pixels of the wrong shape",
         lambda c: raw_json('{"pixels": ' + "[" * 100_000 + "]" * 100_000 + "}"), 400, "bad_request"),
    # JSON body over its limit -> 413
    Case("json-over-limit", "JSON body over its limit",
         lambda c: as_json({"image": "data:image/png;base64," + "A" * 30_000}), 413, "payload_too_large", strict=True),
    Case("json-over-limit-chunked", "JSON body over its limit",
         lambda c: {"method": "POST", "path": "/api/v1/predict", "data": iter([b'{"pixels": [', b"0," * 20_000, b"0]}"]),
                    "headers": {"Content-Type": "application/json"}}, 413, "payload_too_large", strict=True),
    # unknown or malformed job id -> 404
    Case("job-unknown", "unknown job id", lambda c: get(f"/api/v1/jobs/{UNKNOWN}"), 404, "not_found"),
    Case("job-malformed", "malformed job id", lambda c: get("/api/v1/jobs/nope"), 404, "not_found"),
    Case("job-traversal", "malformed job id", lambda c: get("/api/v1/jobs/..%2F..%2Fetc%2Fpasswd"), 404, "not_found"),
    Case("job-long-id", "malformed job id", lambda c: get("/api/v1/jobs/" + "a" * 300), 404, "not_found"),
    Case("job-non-ascii-id", "malformed job id", lambda c: get("/api/v1/jobs/%C3%A9t%C3%A9"), 404, "not_found"),
    Case("job-unknown-results", "unknown job id", lambda c: get(f"/api/v1/jobs/{UNKNOWN}/results"), 404, "not_found"),
    Case("job-unknown-csv", "unknown job id", lambda c: get(f"/api/v1/jobs/{UNKNOWN}/results.csv"), 404, "not_found"),
    Case("job-unknown-png", "unknown job id", lambda c: get(f"/api/v1/jobs/{UNKNOWN}/results/0.png"), 404, "not_found"),
    Case("job-unknown-delete", "unknown job id",
         lambda c: {"method": "DELETE", "path": f"/api/v1/jobs/{UNKNOWN}"}, 404, "not_found"),
    Case("job-png-index-out-of-range", "unknown job id",
         lambda c: get(f"/api/v1/jobs/{c.existing_job()}/results/7.png"), 404, "not_found"),
    # API_TOKEN set, no or wrong token -> 401, with nothing about any job
    Case("token-missing", "API_TOKEN set, no token", lambda c: get(f"/api/v1/jobs/{c.existing_job()}"), 401,
         "unauthorized", strict=True, auth={}),
    Case("token-wrong", "API_TOKEN set, wrong token", lambda c: get(f"/api/v1/jobs/{c.existing_job()}/results"), 401,
         "unauthorized", strict=True, auth={"Authorization": "Bearer not-the-token"}),
    Case("token-without-bearer", "API_TOKEN set, wrong token",
         lambda c: get(f"/api/v1/jobs/{c.existing_job()}/results.csv"), 401, "unauthorized", strict=True,
         auth={"Authorization": TOKEN}),
    Case("token-basic-scheme", "API_TOKEN set, wrong token", lambda c: get(f"/api/v1/jobs/{c.existing_job()}"), 401,
         "unauthorized", strict=True,
         auth={"Authorization": "Basic " + base64.b64encode(f"user:{TOKEN}".encode()).decode()}),
    Case("token-prefix-only", "API_TOKEN set, wrong token", lambda c: get(f"/api/v1/jobs/{c.existing_job()}"), 401,
         "unauthorized", strict=True, auth={"Authorization": f"Bearer {TOKEN[:-1]}"}),
    Case("token-missing-delete", "API_TOKEN set, no token",
         lambda c: {"method": "DELETE", "path": f"/api/v1/jobs/{c.existing_job()}"}, 401, "unauthorized", strict=True,
         auth={}),
    Case("token-missing-submit", "API_TOKEN set, no token", lambda c: job("a.zip", zip_of([("a.png", digit(0))])), 401,
         "unauthorized", strict=True, auth={}),
    Case("token-missing-predict", "API_TOKEN set, no token", lambda c: image(digit(0)), 401, "unauthorized",
         strict=True, auth={}),
    # callback URLs (webhooks): refused at submit, nothing stored; only loopback forms here, the private,
    # link-local and metadata ranges are classified in tests/test_webhooks.py without sending anything
    *[Case(f"callback-{name}", "callback URL: non-allowed loopback address", lambda c, u=url: callback(u), 400,
           "callback_url_not_allowed")
      for name, url in [("127-0-0-2", "http://127.0.0.2/"), ("ipv6-loopback", "http://[::1]:8080/"),
                        ("localhost", "http://localhost/"), ("ipv4-mapped", "http://[::ffff:127.0.0.1]/"),
                        ("ipv4-mapped-hex", "http://[::ffff:7f00:1]/"), ("decimal", "http://2130706433/"),
                        ("hex", "http://0x7f000001/"), ("octal", "http://017700000001/"), ("short", "http://127.1/"),
                        ("trailing-dot", "http://127.0.0.1./"), ("zero", "http://0.0.0.0/")]],
    Case("callback-the-service-itself", "callback URL: non-allowed port",
         lambda c: callback(c.base + "/api/v1/jobs"), 400, "callback_url_not_allowed"),
    Case("callback-redis-port", "callback URL: non-allowed port", lambda c: callback("http://127.0.0.1:6379/"), 400,
         "callback_url_not_allowed"),
    *[Case(f"callback-scheme-{url.split(':')[0]}", "callback URL: other scheme", lambda c, u=url: callback(u), 400,
           "invalid_callback_url")
      for url in ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://127.0.0.1/", "dict://127.0.0.1:11211/",
                  "javascript:alert(1)", "data:text/plain,hi"]],
    Case("callback-credentials", "callback URL: other scheme", lambda c: callback("http://u:p@127.0.0.1/"), 400,
         "invalid_callback_url"),
    Case("callback-huge", "callback URL: huge", lambda c: callback("http://127.0.0.1/" + "a" * 100_000), 400,
         "invalid_callback_url"),
    Case("callback-over-form-memory", "callback URL: huge", lambda c: callback("http://127.0.0.1/" + "a" * 2_000_000),
         413, "payload_too_large"),
]

# Where a path-trick name could land if anything extracted entries to disk.
ESCAPE_DIRS = sorted({ROOT, ROOT.parent, ROOT.parent.parent, Path("/"), Path("/tmp"), Path(tempfile.gettempdir()),
                      Path.cwd()})


def _healthy(base: str, headers: dict) -> None:
    """The process answers, and a plain prediction still works."""
    r = requests.get(f"{base}/healthz", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = requests.post(f"{base}/api/v1/predict", files={"image": ("d.png", digit(0))}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["digit"] == mnist()[1][0]


def _job_items(base: str, headers: dict, job_id: str) -> list[tuple[str, str | None]]:
    job = wait_job(base, job_id, timeout=60, headers=headers)
    items = all_results(base, job_id, headers=headers)
    assert [it["index"] for it in items] == list(range(job["total"]))
    assert job["done"] == job["total"] == len(items)
    assert job["failed"] == sum(it["error"] is not None for it in items)
    assert job["status"] == ("failed" if job["failed"] == job["total"] else "succeeded")
    for it in items:
        if it["error"] is None:
            assert it["status"] == "done" and 0 <= it["digit"] <= 9, it
        else:
            assert it["status"] == "error" and it["digit"] is None and it["error"]["message"], it
    return [(it["filename"], it["error"]["code"] if it["error"] else None) for it in items]


def test_the_table_has_every_row_and_enough_cases():
    rows = {c.row for c in CASES}
    for needle in ("body over the limit", "not a ZIP", "truncated ZIP", "every entry encrypted", "empty ZIP",
                   "only folders", "only __MACOSX/", "only dotfiles", "more entries than the limit",
                   "total uncompressed over the limit", "one entry over its size limit", "one entry over its ratio limit",
                   "header lies about its size", "nested ZIP", NAMES, "a form with no file", "wrong field name",
                   "wrong content type", "single image: zero bytes", "single image: truncated",
                   "single image: text named .png", "single image: SVG", "single image: another unsupported format",
                   "single image: decompression bomb", "single image: all white", "single image: all black",
                   "single image: 1x1", "animated GIF", "CMYK JPEG", "16-bit PNG", "palette with transparency",
                   "JSON: invalid base64", "JSON: data URL of another type", "JSON: pixels of the wrong shape",
                   "JSON: pixels out of range", "JSON: pixels not numbers", "JSON body over its limit",
                   "unknown job id", "malformed job id", "API_TOKEN set, no token", "API_TOKEN set, wrong token",
                   "callback URL: non-allowed loopback address", "callback URL: non-allowed port",
                   "callback URL: other scheme", "callback URL: huge"):
        assert needle in rows, needle
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, request):
    api = request.getfixturevalue("api")  # the service, with a clean job store
    base, headers = (request.getfixturevalue("strict"), AUTH) if case.strict else (api, {})
    before = {d: set(d.glob("df-hostile-*")) for d in ESCAPE_DIRS}
    ctx = Ctx(base, headers)
    kwargs = case.send(ctx)
    method, path = kwargs.pop("method"), kwargs.pop("path")
    sent = {**headers, **kwargs.pop("headers", {})} if case.auth is None else {**case.auth, **kwargs.pop("headers", {})}

    started = time.monotonic()
    r = requests.request(method, base + path, headers=sent, timeout=60, **kwargs)
    elapsed = time.monotonic() - started
    assert r.status_code == case.status, r.text[:500]
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    if case.code is not None:
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert body["error"]["code"] == case.code, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert elapsed < 10, f"refusing took {elapsed:.1f}s"  # decided up front (bombs are never decoded)
    if case.status == 401:
        assert "WWW-Authenticate" in r.headers
        assert not any(job_id in r.text for job_id in ctx.jobs), r.text  # nothing about the job
    if case.items is not None:
        assert _job_items(base, headers, body["id"]) == case.items
    if case.digit is not None:
        assert set(body) >= {"digit", "confidence", "probabilities", "image", "model"}
        assert len(body["probabilities"]) == 10 and body["image"].startswith("data:image/png;base64,")
        assert body["digit"] == mnist()[1][case.digit], body["probabilities"]

    assert {d: set(d.glob("df-hostile-*")) for d in ESCAPE_DIRS} == before  # nothing extracted anywhere
    _healthy(base, headers)
    if base != api:
        _healthy(api, {})
