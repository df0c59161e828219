"""What `submit` uploads: a ZIP, an image, or a folder zipped into a temporary file, streamed as multipart."""

from __future__ import annotations

import mimetypes
import tempfile
import zipfile
from pathlib import Path
from typing import IO

from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

from digitflow.archive import looks_like_zip
from digitflow.cli.client import CliError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}


def image_files(folder: Path) -> list[Path]:
    """The image files under a folder (recursively, hidden ones skipped), in name order."""
    found = [p for p in folder.rglob("*")
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def open_upload(path: Path) -> tuple[str, IO[bytes], str]:
    """(filename, file object, content type) for a ZIP, an image, or a folder zipped into a temp file."""
    if path.is_dir():
        images = image_files(path)
        if not images:
            raise CliError("no_images", f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
        tmp = tempfile.TemporaryFile()  # noqa: SIM115 - returned; the caller closes it
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for image in images:
                zf.write(image, image.relative_to(path).as_posix())
        tmp.seek(0)
        return (path.resolve().name or "folder") + ".zip", tmp, "application/zip"
    if not path.is_file():
        raise CliError("not_found", f"no such file or folder: {path}")
    fileobj = path.open("rb")
    head = fileobj.read(4)
    fileobj.seek(0)
    kind = "application/zip" if looks_like_zip(head) else mimetypes.guess_type(path.name)[0]
    return path.name, fileobj, kind or "application/octet-stream"


def multipart_body(field: str, filename: str, fileobj: IO[bytes], content_type: str,
                   form: dict[str, str] | None = None) -> MultipartEncoderMonitor:
    """A multipart/form-data body with one file field, read from `fileobj` as requests sends it.

    requests-toolbelt streams a real file (one with a descriptor) chunk by chunk; the body's length is
    known up front (`.len`), so it is sent with Content-Length. Set `.callback` to follow the upload: it
is called with the monitor (`.bytes_read`) after each read.
    The filename is sent as browsers do (`"`, CR and LF percent-encoded); a backslash is encoded too, so
    a name ending in one cannot escape its quotes in a parser that unquotes backslashes.
    """
    encoder = MultipartEncoder({**(form or {}), field: (filename.replace("\\", "%5C"), fileobj, content_type)})
    return MultipartEncoderMonitor(encoder)
