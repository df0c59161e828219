"""The HTTP API as the CLI sees it: requests with a bearer token, failures turned into CliError."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

if TYPE_CHECKING:
    import requests

    from digitflow.cli.output import Bar

FINAL = ("succeeded", "failed", "cancelled")
POLL_SECONDS = 0.25

# Exit statuses (listed in the help and the README).
EXIT_OK, EXIT_ERROR, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_USAGE = 2  # as argparse


class CliError(Exception):
    """An error to print as `error: <code>: <message>` and exit with `status`."""

    def __init__(self, code: str, message: str, status: int = EXIT_ERROR):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class Client:
    """The API at a base URL, with an optional bearer token."""

    def __init__(self, url: str, token: str | None, timeout: float):
        import requests

        self.requests = requests
        self.base = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "digitflow-cli"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        """An API path (`/api/v1/...`) under the base URL, or a link the server gave (resolved against it)."""
        return self.base + path if path.startswith("/api/") else urljoin(self.base + "/", path)

    def call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> requests.Response:
        """One request; retried after 429 (GET only), raised as CliError on any other unexpected status."""
        for _ in range(10):
            try:
                resp = self.session.request(method, self.url(path), timeout=self.timeout, **kwargs)
            except self.requests.ConnectionError as exc:
                raise CliError("connection_failed", f"cannot reach {self.base} ({_reason(exc)}); "
                               "is the server running? (set --url or DIGITFLOW_URL)", EXIT_UNREACHABLE) from None
            except self.requests.Timeout:
                raise CliError("timeout", f"{self.base} did not answer within {self.timeout:g} s",
                               EXIT_UNREACHABLE) from None
            if resp.status_code == 429 and method == "GET":
                retry = resp.headers.get("Retry-After", "1")
                time.sleep(min(float(retry), 10) if retry.isdigit() else 1)
                continue
            break
        if resp.status_code not in ok:
            raise api_error(resp)
        return resp

    def job(self, job_id: str) -> dict:
        """The job's JSON."""
        return self.call("GET", f"/api/v1/jobs/{job_id}").json()

    def wait(self, job_id: str, bar: Bar | None = None) -> dict:
        """Poll the job until it is succeeded, failed or cancelled, moving `bar` with its progress."""
        while True:
            job = self.job(job_id)
            if bar is not None:
                bar.update(job.get("done") or 0, total=job.get("total") or 0)
            if job["status"] in FINAL:
                return job
            time.sleep(POLL_SECONDS)

    def download(self, path: str, target: str | None, params: dict | None = None) -> int:
        """Stream a GET to the file `target` (opened once the answer is a success), or to stdout when it
        is None or '-'; returns the bytes written."""
        written = 0
        with self.call("GET", path, stream=True, params=params or None) as resp:
            out = sys.stdout.buffer if target in (None, "-") else open(target, "wb")  # noqa: SIM115
            try:
                for chunk in resp.iter_content(65536):
                    out.write(chunk)
                    written += len(chunk)
            finally:
                out.flush()
                if out is not sys.stdout.buffer:
                    out.close()
        return written


def _reason(exc: Exception) -> str:
    """A short reason for a connection failure."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "timed out"):
        if marker in text:
            return marker.lower()
    return text.rsplit(":", 1)[-1].strip(" )'\"") or "connection failed"


def api_error(resp: requests.Response) -> CliError:
    """The server's {"error": {code, message}} as a CliError (or the status and a snippet of the body)."""
    try:
        err = resp.json()["error"]
        return CliError(str(err["code"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        return CliError(f"http_{resp.status_code}", resp.text.strip()[:200] or resp.reason or "unexpected answer")
