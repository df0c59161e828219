"""Read an uploaded ZIP safely: in memory, entry by entry, with caps on count, size and ratio.

Nothing is extracted to disk and nested archives are not opened. Junk entries (folders,
`__MACOSX/`, dotfiles) are skipped and never counted.
"""

from __future__ import annotations

import bisect
import struct
import zipfile
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class ArchiveError(ValueError):
    """The archive as a whole is refused."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Limits:
    max_entries: int = 100_000
    max_total: int = 2 * 1024**3
    max_entry: int = 20 * 1024 * 1024
    max_ratio: int = 200


@dataclass
class Entry:
    """One image of the archive: its printable name and either its bytes or an error."""

    name: str
    data: bytes | None = None
    error: dict[str, str] | None = None


def printable(name: str) -> str:
    """A file name as given, with control and unprintable characters escaped."""
    if name.isprintable():
        return name or "(unnamed)"
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name) or "(unnamed)"


def is_junk(info: Member) -> bool:
    name = info.filename.replace("\\", "/")
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return not base or info.is_dir() or name.startswith("__MACOSX/") or "/__MACOSX/" in name or base.startswith(".")


def looks_like_zip(head: bytes) -> bool:
    return head[:4] in ZIP_MAGIC


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


class _Patched:
    """A seekable file read through a few overridden bytes (offset -> value); nothing is copied."""

    def __init__(self, fh: IO[bytes], patches: dict[int, int]):
        self._fh, self._offsets, self._patches = fh, sorted(patches), dict(patches)

    def clear_bits(self, offset: int, mask: int) -> None:
        here = self._fh.tell()
        self._fh.seek(offset)
        byte = self._fh.read(1)
        self._fh.seek(here)
        if byte:
            self._patches[offset] = byte[0] & ~mask
            self._offsets = sorted(self._patches)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        start = self._fh.tell()
        data = self._fh.read(n)
        lo, hi = bisect.bisect_left(self._offsets, start), bisect.bisect_left(self._offsets, start + len(data))
        if lo == hi:
            return data
        buf = bytearray(data)
        for offset in self._offsets[lo:hi]:
            buf[offset - start] = self._patches[offset]
        return bytes(buf)


def _open_zip(fileobj: IO[bytes]) -> zipfile.ZipFile:
    """zipfile.ZipFile, except that a name flagged UTF-8 whose bytes are not UTF-8 does not make the whole
    archive unreadable: such names are read with the flag cleared and reported with \\xNN escapes. Its name
    index is dropped: entries are opened by their ZipInfo, never by name, and a 100k-entry archive's index is
    about 5 MB of the web's peak memory while it streams the archive into chunks."""
    try:
        zf = zipfile.ZipFile(fileobj)
        zf.NameToInfo.clear()
        return zf
    except UnicodeDecodeError:
        pass
    endrec = zipfile._EndRecData(fileobj)  # the end record ZipFile just read (private, stable since 2.x)
    if endrec is None:
        raise zipfile.BadZipFile("no end of central directory record")
    size_cd = endrec[zipfile._ECD_SIZE]
    start = endrec[zipfile._ECD_LOCATION] - size_cd  # where ZipFile found the central directory
    if endrec[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
        start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    fileobj.seek(start)
    cd = fileobj.read(size_cd)
    patches, bad, pos, index = {}, [], 0, 0
    while pos + 46 <= len(cd) and cd[pos : pos + 4] == b"PK\x01\x02":
        flags = struct.unpack_from("<H", cd, pos + 8)[0]
        name_len, extra_len, comment_len = struct.unpack_from("<3H", cd, pos + 28)
        raw = cd[pos + 46 : pos + 46 + name_len]
        if flags & 0x800:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                patches[start + pos + 9] = cd[pos + 9] & ~0x08  # flag bit 11 (the name is UTF-8), central header
                bad.append((index, raw))
        pos += 46 + name_len + extra_len + comment_len
        index += 1
    if not patches:
        raise zipfile.BadZipFile("unreadable file names")
    patched = _Patched(fileobj, patches)
    zf = zipfile.ZipFile(patched)
    for index, raw in bad:
        info = zf.filelist[index]
        patched.clear_bits(info.header_offset + 7, 0x08)  # the same flag bit in its local header
        info.filename = raw.decode("utf-8", "backslashreplace")
    zf.NameToInfo.clear()
    return zf


@dataclass(slots=True)
class Member:
    """One entry of the central directory: what reading it and the caps need."""

    filename: str
    flag_bits: int
    compress_type: int
    CRC: int
    compress_size: int
    file_size: int
    header_offset: int
    index: int  # its place in the central directory (zipfile's filelist, for the entries zipfile reads)

    def is_dir(self) -> bool:
        return self.filename.endswith("/")

    def raw_name(self) -> bytes | None:
        """The name's bytes as its local header must repeat them (None: not encodable so)."""
        try:
            return self.filename.encode("utf-8" if self.flag_bits & 0x800 else "cp437")
        except UnicodeEncodeError:
            return None


# A central directory header: signature, version needed, flags, method, CRC, sizes, name/extra/comment
# lengths, local header offset (APPNOTE 4.3.12)
_CENTRAL = struct.Struct("<4s2x3H4x3I3H8xI")
_MAX_EXTRACT_VERSION = 63  # what zipfile reads (zipfile.MAX_EXTRACT_VERSION)
_ZIP64_MARK = 0xFFFFFFFF


def _scan(fh: IO[bytes]) -> tuple[list[Member], int] | None:
    """The central directory of a plain archive (one disk, nothing before it, no entry over 4 GB, every header
    whole and every name decodable), read in one pass: about four times cheaper than zipfile's listing for
    10,000 images. None for anything else, which zipfile then lists (and judges) as before. Archives of over
    65,535 entries have a ZIP64 end record (its locator and record sit between the directory and the end)."""
    end = zipfile._EndRecData(fh)  # private but stable since 2.x (with the ZIP64 record's values); _open_zip uses it too
    if end is None or end[zipfile._ECD_DISK_NUMBER] or end[zipfile._ECD_DISK_START]:
        return None
    gap = {zipfile.stringEndArchive: 0, zipfile.stringEndArchive64: zipfile.sizeEndCentDir64
           + zipfile.sizeEndCentDir64Locator}.get(end[zipfile._ECD_SIGNATURE])
    size, offset = end[zipfile._ECD_SIZE], end[zipfile._ECD_OFFSET]
    if gap is None or offset + size + gap != end[zipfile._ECD_LOCATION]:
        return None
    fh.seek(offset)
    cd = fh.read(size)
    if len(cd) != size:
        return None
    members: list[Member] = []
    pos, unpack = 0, _CENTRAL.unpack_from
    while pos + 46 <= size:
        sig, version, flags, method, crc, csize, usize, nlen, elen, clen, hoff = unpack(cd, pos)
        raw = cd[pos + 46 : pos + 46 + nlen]
        if (sig != b"PK\x01\x02" or version > _MAX_EXTRACT_VERSION or len(raw) != nlen or b"\0" in raw
                or _ZIP64_MARK in (csize, usize, hoff)):
            return None
        try:
            name = raw.decode("utf-8" if flags & 0x800 else "cp437")
        except UnicodeDecodeError:
            return None
        members.append(Member(name, flags, method, crc, csize, usize, hoff, len(members)))
        pos += 46 + nlen + elen + clen
    if pos != size or len(members) != end[zipfile._ECD_ENTRIES_TOTAL]:
        return None
    return members, offset


class Archive:
    """An opened upload: its members in central-directory order, and zipfile for the entries that need it
    (listed by zipfile only when the quick scan declined the archive or an entry asks for it)."""

    def __init__(self, fh: IO[bytes], members: list[Member], start_dir: int, zf: zipfile.ZipFile | None = None):
        self.fh, self.members, self.start_dir, self._zf = fh, members, start_dir, zf
        # the quick reader needs the archive's own bytes: not a file with patched name flags
        self.direct = _Direct(self) if zf is None or not isinstance(zf.fp, _Patched) else None

    @classmethod
    def open(cls, fh: IO[bytes]) -> Archive:
        scanned = _scan(fh)
        if scanned is not None:
            return cls(fh, *scanned)
        zf = _open_zip(fh)
        members = [Member(i.filename, i.flag_bits, i.compress_type, i.CRC, i.compress_size, i.file_size,
                          i.header_offset, index) for index, i in enumerate(zf.infolist())]
        return cls(fh, members, zf.start_dir, zf)

    def open_member(self, m: Member) -> IO[bytes]:
        """The member through zipfile (which raises what it finds wrong with it)."""
        if self._zf is None:
            self._zf = _open_zip(self.fh)
        return self._zf.open(self._zf.filelist[m.index])

    def close(self) -> None:
        if self._zf is not None:
            self._zf.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def open_archive(fileobj: IO[bytes], limits: Limits) -> tuple[Archive, list[Member]]:
    """Open the ZIP and check it as a whole; returns it and its image entries in archive order."""
    try:
        archive = Archive.open(fileobj)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, struct.error) as exc:
        raise ArchiveError(422, "invalid_archive", f"not a readable ZIP archive: {exc}") from None
    entries = [m for m in archive.members if not is_junk(m)]
    if not entries:
        raise ArchiveError(422, "no_images", "the archive holds no files (folders, __MACOSX/ and dotfiles are skipped)")
    if len(entries) > limits.max_entries:
        raise ArchiveError(413, "too_many_entries", f"the archive holds {len(entries)} files; the limit is {limits.max_entries}")
    declared = sum(m.file_size for m in entries)
    if declared > limits.max_total:
        raise ArchiveError(
            413, "archive_too_large", f"the archive expands to {declared} bytes; the limit is {limits.max_total}"
        )
    if all(m.flag_bits & 0x1 for m in entries):
        raise ArchiveError(422, "invalid_archive", "every file in the archive is encrypted")
    return archive, entries


_LOCAL = struct.Struct("<4s22xHH")  # a local file header: signature, then (after 22 bytes) name and extra lengths
_STORED_OR_DEFLATED = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


class _Direct:
    """Reads the common entry (stored or deflated, its local header agreeing with the central directory, exact
    size and CRC) straight from the archive, through a window of WINDOW bytes read at a time (entries come in
    archive order: a few reads for thousands of small images). `read` gives None for anything else, which
    zipfile then reads (and reports) as before. About 20 times cheaper than zipfile's open for small images."""

    WINDOW = 1 << 20

    def __init__(self, archive: Archive):
        self.fp, self.start_dir = archive.fh, archive.start_dir
        # an entry's data must end before the next local header (or the central directory): Python 3.12's
        # zipfile refuses overlapping entries the same way
        self.offsets = array("q", sorted(m.header_offset for m in archive.members))
        self.at, self.buf = 0, b""

    def _end(self, header_offset: int) -> int:
        """Where the entry's data must end: the next local header, or the central directory."""
        k = bisect.bisect_right(self.offsets, header_offset)
        return self.offsets[k] if k < len(self.offsets) else self.start_dir

    def _bytes(self, offset: int, n: int) -> bytes:
        if not (self.at <= offset and offset + n <= self.at + len(self.buf)):
            self.fp.seek(offset)
            self.at, self.buf = offset, self.fp.read(max(n, self.WINDOW))
        return self.buf[offset - self.at : offset - self.at + n]

    def read(self, m: Member, max_entry: int) -> bytes | None:
        name = m.raw_name()
        if m.compress_type not in _STORED_OR_DEFLATED or m.file_size > max_entry or name is None:
            return None
        head = self._bytes(m.header_offset, 30)
        if len(head) < 30:
            return None
        sig, name_len, extra_len = _LOCAL.unpack_from(head)
        start = m.header_offset + 30 + name_len + extra_len
        if sig != b"PK\x03\x04" or start + m.compress_size > self._end(m.header_offset):
            return None
        if self._bytes(m.header_offset + 30, name_len) != name:
            return None
        raw = self._bytes(start, m.compress_size)
        if len(raw) != m.compress_size:
            return None
        if m.compress_type == zipfile.ZIP_STORED:
            data = raw
        else:
            inflate = zlib.decompressobj(-15)
            try:
                data = inflate.decompress(raw, max_entry + 1)
            except zlib.error:
                return None
            if not inflate.eof:
                return None
        if len(data) != m.file_size or zlib.crc32(data) != m.CRC:
            return None
        return data


def read_entries(archive: Archive, entries: list[Member], limits: Limits) -> Iterator[Entry]:
    """Yield each entry's bytes, or a per-entry error; reads are bounded since headers can lie."""
    total = 0
    direct = archive.direct
    for info in entries:
        name = printable(info.filename)
        if info.flag_bits & 0x1:
            yield Entry(name, error=_error("encrypted_entry", "the file is encrypted"))
            continue
        if info.file_size > limits.max_entry:
            yield Entry(name, error=_error("entry_too_large", f"{info.file_size} bytes; the limit is {limits.max_entry}"))
            continue
        if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
            yield Entry(name, error=_error("compression_ratio_too_high",
                                           f"compressed {info.file_size / info.compress_size:.0f}:1; the limit is {limits.max_ratio}:1"))
            continue
        if total >= limits.max_total:
            yield Entry(name, error=_error("archive_too_large", "the archive's total size limit was reached"))
            continue
        try:
            data = direct.read(info, limits.max_entry) if direct is not None else None
            if data is None:
                with archive.open_member(info) as fh:
                    data = fh.read(limits.max_entry + 1)
        except Exception as exc:  # zlib.error, lzma.LZMAError, BadZipFile (CRC), NotImplementedError, ...: this entry only
            yield Entry(name, error=_error("corrupt_entry", f"cannot read this file from the archive: {exc}"))
            continue
        total += len(data)
        if len(data) > limits.max_entry:
            yield Entry(name, error=_error("entry_too_large", f"larger than {limits.max_entry} bytes (its header said {info.file_size})"))
        elif looks_like_zip(data) or info.filename.lower().endswith(".zip"):
            yield Entry(name, error=_error("nested_archive", "archives inside the archive are not opened"))
        else:
            yield Entry(name, data=data)
