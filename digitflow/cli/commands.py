"""The commands; each takes the client, the parsed arguments and the output, and returns the exit status."""

from __future__ import annotations

import argparse
import mimetypes
import sys
import time
import uuid
from pathlib import Path

from digitflow.cli.client import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Client, CliError
from digitflow.cli.output import Output
from digitflow.cli.upload import multipart_body, open_upload

SUBMIT_TRIES = 3
RETRIED = ("timeout", "http_502", "http_503", "http_504", "unavailable", "idempotency_in_progress")


def _stdout_taken(what: str) -> CliError:
    """--json with a download that would also go to stdout."""
    return CliError("usage", f"--json prints its answer on stdout; write {what} to a file", EXIT_USAGE)


def _progress_line(job: dict) -> str:
    """`<id>  <status>  done/total (pct)  failed n`."""
    total, done, failed = job.get("total") or 0, job.get("done") or 0, job.get("failed") or 0
    pct = f"{done / total:.0%}" if total else "-"
    return f"{job['id']}  {job['status']}  {done}/{total} ({pct})  failed {failed}"


def cmd_predict(client: Client, args: argparse.Namespace, out: Output) -> int:
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
    out.line(f"{body['digit']}  (confidence {body['confidence']:.4f})")
    out.document(body)
    return EXIT_OK


def cmd_submit(client: Client, args: argparse.Namespace, out: Output) -> int:
    """Upload a ZIP, an image or a folder as one job; optionally wait and write the CSV."""
    if out.json and args.csv == "-":
        raise _stdout_taken("the CSV (--csv FILE)")
    filename, fileobj, kind = open_upload(Path(args.path))
    key = args.idempotency_key or uuid.uuid4().hex
    form = {"callback_url": args.callback_url} if args.callback_url else {}
    with fileobj:
        for attempt in range(1, SUBMIT_TRIES + 1):  # the same key each time: never a second job
            fileobj.seek(0)
            body = multipart_body("file", filename, fileobj, kind, form)
            try:
                with out.bar("upload", body.len, as_bytes=True) as bar:
                    body.callback = lambda monitor, bar=bar: bar.update(monitor.bytes_read)
                    resp = client.call("POST", "/api/v1/jobs", ok=(202,), data=body,
                                       headers={"Content-Type": body.content_type, "Idempotency-Key": key})
                break
            except CliError as exc:
                if exc.code not in RETRIED or attempt == SUBMIT_TRIES:
                    raise
                print(f"submit: {exc.message}; retrying ({attempt + 1}/{SUBMIT_TRIES}) with the same "
                      "Idempotency-Key", file=sys.stderr)
                time.sleep(attempt)
    job = resp.json()
    out.line(job["id"])  # at once, so that a script has the id even while --wait runs
    if not (args.wait or args.csv):
        out.document(job)
        return EXIT_OK
    with out.bar("images", job.get("total") or 0) as bar:
        job = client.wait(job["id"], bar)
    done, failed = job.get("done") or 0, job.get("failed") or 0
    out.line(f"{job['status']}: {done - failed} succeeded, {failed} failed of {job.get('total') or 0}")
    if args.csv:
        client.download(f"/api/v1/jobs/{job['id']}/results.csv", args.csv)
    out.document(job)
    return EXIT_OK if job["status"] == "succeeded" else EXIT_ERROR


def cmd_status(client: Client, args: argparse.Namespace, out: Output) -> int:
    """Print a job's status and progress."""
    job = client.job(args.job_id)
    out.line(_progress_line(job))
    out.document(job)
    return EXIT_OK


def cmd_jobs(client: Client, args: argparse.Namespace, out: Output) -> int:
    """List the caller's jobs, newest first: one page, or every page with --all."""
    page = client.call("GET", "/api/v1/jobs", params={"limit": args.limit, "offset": args.offset}).json()
    items = list(page["items"])
    while args.all and page.get("next"):
        page = client.call("GET", page["next"]).json()
        items += page["items"]
    for job in items:
        out.line(f"{_progress_line(job)}  {job.get('created_at') or ''}".rstrip())
    if page.get("next") and not out.json:
        more = (page.get("total") or 0) - args.offset - len(items)
        print(f"({more} more: --offset {args.offset + len(items)}, or --all)", file=sys.stderr)
    out.document({"items": items, "total": page.get("total"), "next": page.get("next")})
    return EXIT_OK


def _download(client: Client, out: Output, job_id: str, what: str, target: str | None, **params: object) -> int:
    """Write one of the job's downloads; with --json, print {job_id, path, bytes}."""
    if out.json and target in (None, "-"):
        raise _stdout_taken(f"the {what} (-o FILE)")
    size = client.download(f"/api/v1/jobs/{job_id}/{what}", target, params)
    out.document({"job_id": job_id, "path": target, "bytes": size})
    return EXIT_OK


def cmd_export(client: Client, args: argparse.Namespace, out: Output) -> int:
    """Write a job's results CSV."""
    return _download(client, out, args.job_id, "results.csv", args.output)


def cmd_labelled(client: Client, args: argparse.Namespace, out: Output) -> int:
    """Write a job's reviewed digits as a labelled set (ZIP), the input of `model_training finetune`."""
    params = {"min_confidence": args.min_confidence} if args.min_confidence is not None else {}
    return _download(client, out, args.job_id, "labelled.zip", args.output, **params)
