"""The `digitflow` command: predict one image, submit a ZIP or folder, follow a job, export its CSV.

It talks to the HTTP API only (stdlib + requests). Exit status: 0 success, 1 an error answered by
the server (or a job that ended failed or cancelled), 2 the server could not be reached (or bad usage),
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from digitflow.archive import looks_like_zip

if TYPE_CHECKING:
    import requests

DEFAULT_URL = "http://127.0.0.1:5000"
FINAL = ("succeeded", "failed", "cancelled")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}
POLL_SECONDS = 0.25


class CliError(Exception):
    """An error to print as `error: <code>: <message>` and exit with `status`."""

    def __init__(self, code: str, message: str, status: int = 1):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# --- progress -----------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr: redrawn with \\r on a terminal, one final line otherwise."""

    def __init__(self, label: str, total: int, enabled: bool, as_bytes: bool = False):
        self.label, self.total, self.enabled, self.as_bytes = label, total, enabled, as_bytes
        self.tty = enabled and sys.stderr.isatty()
        self.current, self.drawn, self.last_draw = 0, -1, 0.0

    def _fmt(self, n: int) -> str:
        if not self.as_bytes:
            return str(n)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if n < 1024 or unit == "GiB":
                return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
            n /= 1024
        return str(n)

    def _line(self) -> str:
        frac = self.current / self.total if self.total else 1.0
        bar = "#" * int(frac * 30)
        return f"{self.label} [{bar:<30}] {frac:4.0%}  {self._fmt(self.current)}/{self._fmt(self.total)}"

    def update(self, current: int) -> None:
        """Set the current count and redraw (at most ten times a second on a terminal)."""
        self.current = min(current, self.total) if self.total else current
        now = time.monotonic()
        if self.tty and self.current != self.drawn and (now - self.last_draw >= 0.1 or self.current >= self.total):
            self.last_draw, self.drawn = now, self.current
            sys.stderr.write("\r" + self._line())
            sys.stderr.flush()

    def close(self) -> None:
        """End the bar with a newline (or print its only line when stderr is not a terminal)."""
        if not self.enabled:
            return
        sys.stderr.write("\n" if self.tty and self.current == self.drawn else ("\r" if self.tty else "") + self._line() + "\n")
        sys.stderr.flush()


# --- upload body ----------------------------------------------------------------------------------


class MultipartBody:
    """A multipart/form-data body with one file field, streamed from a file object as requests reads it."""

    def __init__(self, field: str, filename: str, fileobj: IO[bytes], size: int, content_type: str,
                 progress: Progress):
        boundary = uuid.uuid4().hex
        safe = filename.replace("\\", "%5C").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.parts: list[IO[bytes] | bytes] = [
            (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{safe}\"\r\n"
             f"Content-Type: {content_type}\r\n\r\n").encode(),
            fileobj,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
        self.length = len(self.parts[0]) + size + len(self.parts[2])
        self.sent, self.progress = 0, progress

    def __len__(self) -> int:
        return self.length

    def read(self, n: int = -1) -> bytes:
        """Return up to n bytes of the body (all that is left when n < 0)."""
        out = b""
        while self.parts and (n < 0 or len(out) < n):
            part = self.parts[0]
            want = -1 if n < 0 else n - len(out)
            if isinstance(part, bytes):
                chunk = part if want < 0 else part[:want]
                rest = b"" if want < 0 else part[want:]
                if rest:
                    self.parts[0] = rest
                else:
                    self.parts.pop(0)
            else:
                chunk = part.read(want)
                if not chunk:
                    self.parts.pop(0)
            out += chunk
        self.sent += len(out)
        self.progress.update(self.sent)
        return out


def _image_files(folder: Path) -> list[Path]:
    """The image files under a folder (recursively, hidden ones skipped), in name order."""
    found = [p for p in folder.rglob("*")
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def open_upload(path: Path) -> tuple[str, IO[bytes], int, str]:
    """(filename, file object, size, content type) for a ZIP, an image, or a folder zipped into a temp file."""
    if path.is_dir():
        images = _image_files(path)
        if not images:
            raise CliError("no_images", f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
        tmp = tempfile.TemporaryFile()  # noqa: SIM115 - returned; the caller closes it
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for image in images:
                zf.write(image, image.relative_to(path).as_posix())
        size = tmp.tell()
        tmp.seek(0)
        return (path.resolve().name or "folder") + ".zip", tmp, size, "application/zip"
    if not path.is_file():
        raise CliError("not_found", f"no such file or folder: {path}")
    fileobj = path.open("rb")
    head = fileobj.read(4)
    fileobj.seek(0)
    kind = "application/zip" if looks_like_zip(head) else mimetypes.guess_type(path.name)[0]
    return path.name, fileobj, path.stat().st_size, kind or "application/octet-stream"


# --- HTTP -------------------------------------------------------------------------------------------


class Client:
    """The API at a base URL, with an optional bearer token; turns failures into CliError."""

    def __init__(self, url: str, token: str | None, timeout: float):
        import requests

        self.requests = requests
        self.base = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "digitflow-cli"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> requests.Response:
        """One request; retried after 429, raised as CliError on any other unexpected status."""
        url = self.base + path
        for _ in range(10):
            try:
                resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except self.requests.ConnectionError as exc:
                raise CliError("connection_failed", f"cannot reach {self.base} ({_reason(exc)}); "
                               "is the server running? (set --url or DIGITFLOW_URL)", 2) from None
            except self.requests.Timeout:
                raise CliError("timeout", f"{self.base} did not answer within {self.timeout:g} s", 2) from None
            if resp.status_code == 429 and method == "GET":
                retry = resp.headers.get("Retry-After", "1")
                time.sleep(min(float(retry), 10) if retry.isdigit() else 1)
                continue
            break
        if resp.status_code not in ok:
            raise _api_error(resp)
        return resp

    def job(self, job_id: str) -> dict:
        """The job's JSON."""
        return self.call("GET", f"/api/v1/jobs/{job_id}").json()

    def wait(self, job_id: str, progress: Progress | None = None) -> dict:
        """Poll the job until it is succeeded, failed or cancelled."""
        while True:
            job = self.job(job_id)
            if progress is not None:
                progress.total = job.get("total") or 0
                progress.update(job.get("done") or 0)
            if job["status"] in FINAL:
                return job
            time.sleep(POLL_SECONDS)


def _reason(exc: Exception) -> str:
    """A short reason for a connection failure."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "timed out"):
        if marker in text:
            return marker.lower()
    return text.rsplit(":", 1)[-1].strip(" )'\"") or "connection failed"


def _api_error(resp: requests.Response) -> CliError:
    """The server's {"error": {code, message}} as a CliError (or the status and a snippet of the body)."""
    try:
        err = resp.json()["error"]
        return CliError(str(err["code"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        return CliError(f"http_{resp.status_code}", resp.text.strip()[:200] or resp.reason or "unexpected answer")


# --- commands ---------------------------------------------------------------------------------------


def cmd_predict(client: Client, args: argparse.Namespace) -> int:
    """Predict one image; poll its job when the server answers 202."""
    path = Path(args.image)
    if not path.is_file():
        raise CliError("not_found", f"no such file: {path}")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    with path.open("rb") as f:
        params = {} if args.server_wait is None else {"wait": args.server_wait}
        resp = client.call("POST", "/api/v1/predict", ok=(200, 202), params=params,
                           files={"image": (path.name, f, kind)})
    body = resp.json()
    if resp.status_code == 202:
        job = client.wait(body["job_id"])
        items = client.call("GET", f"/api/v1/jobs/{job['id']}/results",
                            params={"limit": 1, "include": "probabilities"}).json()["items"]
        item = items[0] if items else {"status": "error", "error": {"code": job["status"], "message": "no result"}}
        if item["status"] != "done":
            raise CliError(item["error"]["code"], item["error"]["message"])
        body = {k: item[k] for k in ("digit", "confidence", "probabilities")} | {"model": job.get("model"),
                                                                                  "job_id": job["id"]}
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(f"{body['digit']}  (confidence {body['confidence']:.4f})")
    return 0


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    """Upload a ZIP, an image or a folder as one job; optionally wait and write the CSV."""
    filename, fileobj, size, kind = open_upload(Path(args.path))
    with fileobj:
        bar = Progress("upload", size, not args.quiet, as_bytes=True)
        body = MultipartBody("file", filename, fileobj, size, kind, bar)
        resp = client.call("POST", "/api/v1/jobs", ok=(202,), data=body, headers={"Content-Type": body.content_type})
        bar.close()
    job = resp.json()
    print(job["id"], flush=True)
    if not (args.wait or args.csv):
        return 0
    bar = Progress("images", job.get("total") or 0, not args.quiet)
    job = client.wait(job["id"], bar)
    bar.close()
    done, failed = job.get("done") or 0, job.get("failed") or 0
    print(f"{job['status']}: {done - failed} succeeded, {failed} failed of {job.get('total') or 0}")
    if args.csv:
        write_csv(client, job["id"], args.csv)
    return 0 if job["status"] == "succeeded" else 1


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    """Print a job's status and progress."""
    job = client.job(args.job_id)
    if args.json:
        print(json.dumps(job, indent=2))
        return 0
    total, done, failed = job.get("total") or 0, job.get("done") or 0, job.get("failed") or 0
    pct = f"{done / total:.0%}" if total else "-"
    print(f"{job['id']}  {job['status']}  {done}/{total} ({pct})  failed {failed}")
    return 0


def write_csv(client: Client, job_id: str, out: str | None) -> None:
    """Stream the job's results CSV to a file, or to stdout when out is None or '-'."""
    download(client, f"/api/v1/jobs/{job_id}/results.csv", out)


def download(client: Client, path: str, out: str | None, **params: Any) -> None:
    """Stream a GET to a file, or to stdout when out is None or '-'."""
    resp = client.call("GET", path, stream=True, params=params or None)
    with resp:
        if out in (None, "-"):
            for chunk in resp.iter_content(65536):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        with open(out, "wb") as f:
            for chunk in resp.iter_content(65536):
                f.write(chunk)


def cmd_export(client: Client, args: argparse.Namespace) -> int:
    """Write a job's results CSV."""
    write_csv(client, args.job_id, args.output)
    return 0


def cmd_labelled(client: Client, args: argparse.Namespace) -> int:
    """Write a job's reviewed digits as a labelled set (ZIP), the input of `model_training finetune`."""
    params = {"min_confidence": args.min_confidence} if args.min_confidence is not None else {}
    download(client, f"/api/v1/jobs/{args.job_id}/labelled.zip", args.output, **params)
    return 0


# --- entry point ---------------------------------------------------------------------------------------


def add_global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """--url, --token and --timeout, accepted before or after the command."""
    parser.add_argument("--url", default=default,
                        help=f"base URL of the service (env DIGITFLOW_URL; default {DEFAULT_URL})")
    parser.add_argument("--token", default=default,
                        help="API token, sent as `Authorization: Bearer` (env DIGITFLOW_TOKEN or API_TOKEN)")
    parser.add_argument("--timeout", type=float, default=default, help="seconds to wait for each answer (default 60)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; global options are accepted before or after the command."""
    env = os.environ
    parser = argparse.ArgumentParser(prog="digitflow", description="Handwritten-digit recognition from the command line.")
    add_global_options(parser, None)
    parser.set_defaults(url=env.get("DIGITFLOW_URL") or DEFAULT_URL,
                        token=env.get("DIGITFLOW_TOKEN") or env.get("API_TOKEN") or None, timeout=60.0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The same options after the command; SUPPRESS keeps them from overwriting values given before it.
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, argparse.SUPPRESS)

    p = sub.add_parser("predict", parents=[common], help="predict the digit in one image")
    p.add_argument("image", help="an image file (PNG, JPEG, ...)")
    p.add_argument("--json", action="store_true", help="print the full JSON answer")
    p.add_argument("--server-wait", type=float, metavar="S",
                   help="seconds the server holds the request before answering 202 (then the job is polled)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("submit", parents=[common], help="submit a ZIP, an image or a folder of images as a job")
    p.add_argument("path", help="a ZIP file, an image, or a folder (its images are zipped on the fly)")
    p.add_argument("--wait", action="store_true", help="wait until the job finishes and print a summary")
    p.add_argument("--csv", metavar="OUT", help="write the results CSV to OUT when finished (implies --wait)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", parents=[common], help="show a job's status and progress")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true", help="print the job's JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("export", parents=[common], help="write a job's results as CSV")
    p.add_argument("job_id")
    p.add_argument("-o", "--output", metavar="OUT", help="file to write (default: stdout)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("labelled", parents=[common], help="write a job's reviewed digits as a labelled set (ZIP)")
    p.add_argument("job_id")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="ZIP file to write ('-': stdout)")
    p.add_argument("--min-confidence", type=float, metavar="P",
                   help="also include unreviewed predictions at or above this confidence")
    p.set_defaults(func=cmd_labelled)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(Client(args.url, args.token, args.timeout), args)
    except CliError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return exc.status
    except OSError as exc:  # a local file, or a request failure other than a refused connection
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
