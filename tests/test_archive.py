"""digitflow.archive reads entries straight from the archive when it can; what it yields must be what zipfile
reads, and every entry it cannot vouch for must go through zipfile and keep zipfile's verdict."""

from __future__ import annotations

import io
import zipfile

import pytest

from digitflow.archive import Limits, open_archive, read_entries

LIMITS = Limits()
PAYLOADS = {f"d{i}.png": bytes(range(256)) * (i + 1) + b"\x89PNG" * i for i in range(6)}


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes data descriptors (flag bit 3) after each entry."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.buf += b
        return len(b)


def _read(data: bytes) -> dict[str, bytes | dict]:
    archive, infos = open_archive(io.BytesIO(data), LIMITS)
    with archive:
        return {e.name: (e.data if e.data is not None else e.error) for e in read_entries(archive, infos, LIMITS)}


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_every_method_reads_as_zipfile_does(method):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, payload in PAYLOADS.items():
            zf.writestr(name, payload)
    assert _read(buf.getvalue()) == PAYLOADS


def test_entries_with_data_descriptors_read_whole():
    stream = _Unseekable()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in PAYLOADS.items():
            with zf.open(name, "w") as fh:
                fh.write(payload)
    data = bytes(stream.buf)
    assert zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 0x08
    assert _read(data) == PAYLOADS


def _deflated(name: str, payload: bytes) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, payload)
        zf.writestr("fine.png", payload)
    return bytearray(buf.getvalue())


def test_a_flipped_byte_is_a_corrupt_entry_and_the_others_still_read():
    payload = PAYLOADS["d3.png"]
    data = _deflated("bad.png", payload)
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("bad.png")
    data[info.header_offset + 30 + len("bad.png") + info.compress_size // 2] ^= 0xFF
    out = _read(bytes(data))
    assert out["bad.png"]["code"] == "corrupt_entry"
    assert out["fine.png"] == payload


def test_a_local_header_that_names_another_file_is_refused_like_zipfile():
    payload = PAYLOADS["d2.png"]
    data = _deflated("abc.png", payload)
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("abc.png")
    data[info.header_offset + 30 : info.header_offset + 33] = b"xyz"  # the local name only
    out = _read(bytes(data))
    assert out["abc.png"]["code"] == "corrupt_entry"
    assert "differ" in out["abc.png"]["message"]
    assert out["fine.png"] == payload


def _zip(entries: dict[str, bytes], comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
        zf.comment = comment
    return buf.getvalue()


def test_the_quick_listing_agrees_with_zipfile():
    data = _zip({**PAYLOADS, "dir/ünïcode.png": b"x" * 40, "dir/": b""}, comment=b"made by a scanner")
    archive, entries = open_archive(io.BytesIO(data), LIMITS)
    assert archive._zf is None  # listed without zipfile
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert [(m.filename, m.file_size, m.compress_size, m.CRC, m.header_offset, m.flag_bits) for m in archive.members] == \
        [(i.filename, i.file_size, i.compress_size, i.CRC, i.header_offset, i.flag_bits) for i in infos]
    assert [m.filename for m in entries] == [*PAYLOADS, "dir/ünïcode.png"]  # the folder is skipped


def test_bytes_before_the_archive_are_listed_by_zipfile_and_read_the_same():
    """A self-extracting archive: its offsets count from where the ZIP starts, not from the file's start."""
    data = b"MZ" + bytes(998) + _zip(PAYLOADS)
    archive, _ = open_archive(io.BytesIO(data), LIMITS)
    assert archive._zf is not None
    assert _read(data) == PAYLOADS


def test_a_name_with_a_nul_byte_reads_as_zipfile_names_it():
    data = bytearray(_zip({"abc.png": PAYLOADS["d1.png"], "fine.png": PAYLOADS["d0.png"]}))
    for at in (i for i in range(len(data)) if data[i : i + 7] == b"abc.png"):  # local and central names
        data[at + 3] = 0
    out = _read(bytes(data))
    assert out == {"abc": PAYLOADS["d1.png"], "fine.png": PAYLOADS["d0.png"]}


def test_an_entry_zipfile_must_read_is_read_by_zipfile_when_the_listing_was_quick():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.png", PAYLOADS["d2.png"], compress_type=zipfile.ZIP_BZIP2)
        zf.writestr("b.png", PAYLOADS["d3.png"], compress_type=zipfile.ZIP_DEFLATED)
    archive, entries = open_archive(io.BytesIO(buf.getvalue()), LIMITS)
    with archive:
        out = {e.name: e.data for e in read_entries(archive, entries, LIMITS)}
        assert archive._zf is not None  # opened for the bzip2 entry only
    assert out == {"a.png": PAYLOADS["d2.png"], "b.png": PAYLOADS["d3.png"]}


def test_an_archive_with_a_zip64_end_record_is_listed_quickly_too(monkeypatch):
    """Over 65,535 entries a ZIP needs the ZIP64 end record; zipfile writes it here for a few (a lower limit)."""
    with monkeypatch.context() as m:
        m.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
        data = _zip(PAYLOADS)
    assert zipfile._EndRecData(io.BytesIO(data))[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64
    archive, entries = open_archive(io.BytesIO(data), LIMITS)
    assert archive._zf is None and len(entries) == len(PAYLOADS)
    assert _read(data) == PAYLOADS
