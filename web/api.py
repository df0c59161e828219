"""The REST API, version 1."""

from __future__ import annotations

import base64
import csv
import io
import math
import time

from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context, url_for

from digitflow.archive import printable
from digitflow.csvsafe import safe_cell
from digitflow.drawings import Drawing
from digitflow.imaging import to_png
from digitflow.jobstore import CANCELLED, FINAL, new_job_id, valid_job_id
from web import drawings, idempotency
from web.auth import given_token
from web.errors import ApiError
from web.ingest import create_bulk, decode_data_url, pixels_input, single_image
from web.services import Services
from web.webhooks import callback_url_field

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def svc() -> Services:
    return current_app.extensions["digitflow"]


@bp.before_request
def require_token():
    """With API keys configured, every call names one (401 otherwise); g.client is its name."""
    keys = svc().keys
    g.client = None
    if not keys.required:
        return None
    g.client = keys.client(given_token())
    if g.client is None:
        raise ApiError(401, "unauthorized", "a valid `Authorization: Bearer <token>` header is required",
                       {"WWW-Authenticate": 'Bearer realm="digitflow"'})
    return None


def _json_body() -> dict:
    limit = svc().settings.max_json_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "payload_too_large", f"JSON bodies are limited to {limit} bytes")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "payload_too_large", f"JSON bodies are limited to {limit} bytes")
    import json

    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting like [[[[... too deep
        raise ApiError(400, "bad_request", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the JSON body must be an object")
    return body


def _wait_seconds() -> float:
    s = svc().settings
    raw = request.args.get("wait", s.predict_wait_default)
    try:
        wait = float(raw)
    except (TypeError, ValueError):
        raise ApiError(400, "bad_request", "`wait` must be a number of seconds") from None
    if not math.isfinite(wait) or wait < 0:
        raise ApiError(400, "bad_request", "`wait` must be between 0 and 30")
    return min(wait, s.predict_wait_max)


def _mimetype() -> str:
    return (request.mimetype or "").lower()


@bp.post("/predict")
def predict():
    """One image -> its digit; waits up to `wait` seconds, else answers 202 with the job."""
    s = svc()
    wait = _wait_seconds()
    mime = _mimetype()
    if mime == "application/json":
        body = _json_body()
        if "image" in body:
            raw, name = single_image(decode_data_url(body["image"]), s.settings.max_image_pixels, canvas=True), "image"
        elif "pixels" in body:
            raw, name = pixels_input(body["pixels"]), "pixels"
        else:
            raise ApiError(400, "bad_request", "send {\"image\": \"data:image/png;base64,...\"} or {\"pixels\": [[...]]}")
    elif mime == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise ApiError(400, "bad_request", "send the image in the multipart field `image`")
        data = upload.read(s.settings.max_entry_bytes + 1)
        if len(data) > s.settings.max_entry_bytes:
            raise ApiError(413, "file_too_large", f"an image is limited to {s.settings.max_entry_bytes} bytes")
        raw = single_image(data, s.settings.max_image_pixels)
        name = printable(upload.filename or "image")
    else:
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data (field `image`) or application/json")
    key = idempotency.header_key()
    job_id, fresh = new_job_id(), True
    if key is not None:
        parts = ("json", idempotency.canonical_json(body)) if mime == "application/json" else ("image", name, data)
        job_id, fresh = s.idempotency.claim(g.client, "predict", key, idempotency.fingerprint(*parts), s.store)
    if fresh:  # the lean path: the job record is written by the worker (or below, if `wait` runs out)
        now = time.time()
        drawing = Drawing(job_id, raw, name, now, now + s.settings.result_ttl_seconds, s.model_json, g.client or "")
        def send():
            return drawings.predict(s.redis, s.store, s.answers, drawing, wait)

        answer = send() if key is None else s.idempotency.create_once(g.client, "predict", key, job_id, s.store, send)
    else:
        answer = drawings.wait_for_record(s.store, job_id, wait)
    if answer is None:
        return jsonify({"job_id": job_id, "status_url": url_for("api.get_job", job_id=job_id)}), 202, _replayed(fresh)
    result, digit = answer
    if "error" in result:
        raise ApiError(422, result["error"]["code"], result["error"]["message"])
    model = s.model
    return jsonify({
        "digit": result["digit"],
        "confidence": result["confidence"],
        "probabilities": result["probabilities"],
        "model_version": result.get("model_version", model["version"]),
        "image": "data:image/png;base64," + base64.b64encode(_png(digit)).decode(),
        "model": model,
        "job_id": job_id,
    }), _replayed(fresh)


def _replayed(fresh: bool) -> dict[str, str]:
    """The header that tells a client its Idempotency-Key matched an earlier request."""
    return {} if fresh else {"Idempotent-Replayed": "true"}


def _png(digit: bytes | None) -> bytes:
    import numpy as np

    return to_png(np.frombuffer(digit or bytes(784), dtype=np.uint8).reshape(28, 28))


@bp.post("/jobs")
def create_job():
    """A bulk job: one ZIP or several images in multipart fields `file`."""
    if _mimetype() != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with one or more `file` fields")
    uploads = [f for f in request.files.getlist("file")]
    if not uploads:
        raise ApiError(400, "bad_request", "send a ZIP or images in the multipart field `file`")
    s = svc()
    files = [(f.filename or f"file{i}", f.stream) for i, f in enumerate(uploads)]
    fields = {"client": g.client, "callback_url": callback_url_field(s.settings)}
    key = idempotency.header_key()
    if key is None:
        job_id, fresh = create_bulk(s, files, **fields), True
    else:
        form = sorted(request.form.items(multi=True))
        fp = idempotency.fingerprint(*(p for name, fh in files for p in (name, fh)), repr(form))
        job_id, fresh = s.idempotency.claim(g.client, "jobs", key, fp, s.store)
        if fresh:
            s.idempotency.create_once(g.client, "jobs", key, job_id, s.store,
                                      lambda: create_bulk(s, files, job_id=job_id, **fields))
    job = s.store.get(job_id)
    resp = jsonify(_job_view(job))
    resp.status_code = 202
    resp.headers["Location"] = url_for("api.get_job", job_id=job_id)
    resp.headers.update(_replayed(fresh))
    return resp


@bp.get("/jobs")
def list_jobs():
    """The caller's bulk jobs, newest first, paged like the results."""
    offset = _int_arg("offset", 0, 0, 10**9)
    limit = _int_arg("limit", 20, 1, 100)
    store = svc().store
    ids, total = store.client_jobs(g.client, offset, limit)
    jobs = [j for j in (store.get(i) for i in ids) if j is not None]
    nxt = url_for("api.list_jobs", offset=offset + limit, limit=limit) if offset + limit < total else None
    return jsonify({"items": [_job_view(j) for j in jobs], "total": total, "next": nxt})


def _load(job_id: str) -> dict:
    job = svc().store.get(job_id) if valid_job_id(job_id) else None
    if job is None or (svc().keys.required and job.get("client") != g.client):  # another client's: not yours
        raise ApiError(404, "not_found", "no such job (it may have expired)")
    return job


def _job_view(job: dict) -> dict:
    view = dict(job)
    view["links"] = {
        "self": url_for("api.get_job", job_id=job["id"]),
        "results": url_for("api.job_results", job_id=job["id"]),
        "csv": url_for("api.job_csv", job_id=job["id"]),
        "page": url_for("ui.job_page", job_id=job["id"]),
    }
    return view


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(_job_view(_load(job_id)))


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, "bad_request", f"`{name}` must be an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, "bad_request", f"`{name}` must be between {lo} and {hi}")
    return value


def item_view(item: dict, with_probs: bool) -> dict:
    result, label = item["result"], item.get("label")
    view = {"index": item["index"], "filename": item["filename"], "status": "pending", "digit": None,
            "confidence": None, "error": None, "label": label, "corrected": False, "model_version": None}
    if result is not None and "error" in result:
        view.update(status="error", error=result["error"])
    elif result is not None:
        view.update(status="done", digit=result["digit"], confidence=result["confidence"],
                    corrected=label is not None and label != result["digit"], model_version=result.get("model_version"))
    if with_probs:
        view["probabilities"] = result.get("probabilities") if result and "error" not in result else None
    return view


@bp.get("/jobs/<job_id>/results")
def job_results(job_id: str):
    job = _load(job_id)
    offset = _int_arg("offset", 0, 0, 10**9)
    limit = _int_arg("limit", 100, 1, 1000)
    with_probs = "probabilities" in request.args.get("include", "").split(",")
    items = [item_view(i, with_probs) for i in svc().store.results(job_id, offset, limit)]
    nxt = None
    if offset + limit < job["total"]:
        args = {"offset": offset + limit, "limit": limit}
        if with_probs:
            args["include"] = "probabilities"
        nxt = url_for("api.job_results", job_id=job_id, **args)
    return jsonify({"items": items, "total": job["total"], "next": nxt})


@bp.get("/jobs/<job_id>/results/<int:index>.png")
def job_result_png(job_id: str, index: int):
    _load(job_id)
    digit = svc().store.image(job_id, index)
    if digit is None:
        raise ApiError(404, "not_found", "no image for this index (pending, failed or out of range)")
    return Response(_png(digit), mimetype="image/png", headers={"Cache-Control": "private, max-age=86400"})


_SIGNATURES = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"), (b"RIFF", "image/webp"))


@bp.get("/jobs/<job_id>/results/<int:index>/original")
def job_result_original(job_id: str, index: int):
    """A small preview of the upload (longest side <= 96 px), kept for review."""
    _load(job_id)
    data = svc().store.preview(job_id, index)
    if data is None:
        raise ApiError(404, "not_found", "no preview for this index (pending, a drawing, or out of range)")
    mime = next((m for sig, m in _SIGNATURES if data.startswith(sig)), "application/octet-stream")
    return Response(data, mimetype=mime, headers={"Cache-Control": "private, max-age=86400",
                                                  "X-Content-Type-Options": "nosniff"})


@bp.get("/jobs/<job_id>/results.csv")
def job_csv(job_id: str):
    job = _load(job_id)
    store = svc().store

    def rows():
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["index", "filename", "status", "digit", "confidence", "label", "corrected", "model_version",
                         "error"])
        for offset in range(0, job["total"], 1000):
            for item in store.results(job_id, offset, 1000):
                v = item_view(item, False)
                err = v["error"]["code"] + ": " + v["error"]["message"] if v["error"] else ""
                writer.writerow([v["index"], safe_cell(v["filename"]), v["status"],
                                 "" if v["digit"] is None else v["digit"],
                                 "" if v["confidence"] is None else f"{v['confidence']:.6f}",
                                 "" if v["label"] is None else v["label"], "true" if v["corrected"] else "false",
                                 v["model_version"] or "", safe_cell(err)])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        if job["total"] == 0:
            yield buf.getvalue()

    headers = {"Content-Disposition": f'attachment; filename="digitflow-{job_id}.csv"'}
    return Response(stream_with_context(rows()), mimetype="text/csv", headers=headers)


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str):
    job = _load(job_id)
    store = svc().store
    if job["status"] in FINAL:
        store.delete(job_id)
        return "", 204
    if not store.cancel(job_id):  # it ended on its own meanwhile: nothing left to cancel
        return jsonify(_job_view(store.get(job_id) or job)), 200
    job = store.get(job_id) or job
    job["status"] = CANCELLED
    return jsonify(_job_view(job)), 202


@bp.put("/jobs/<job_id>/results/<index>/label")
def set_label(job_id: str, index: str):
    """A reviewer's label for one result: {"label": 0-9} sets it, {"label": null} clears it."""
    job = _load(job_id)
    if not index.isdigit() or int(index) >= job["total"]:
        raise ApiError(404, "not_found", f"no item {index!r} in this job (it has {job['total']})")
    if _mimetype() != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json: {\"label\": 0-9 or null}")
    body = _json_body()
    if "label" not in body:
        raise ApiError(400, "bad_request", "send {\"label\": 0-9} or {\"label\": null}")
    label = body["label"]
    if label is not None and (isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 9):
        raise ApiError(400, "bad_request", "`label` must be an integer 0-9 or null")
    store = svc().store
    result = store.result(job_id, int(index))
    if result is None or "error" in result:
        raise ApiError(409, "not_reviewable", "this item has no prediction to review (pending or failed)")
    store.set_label(job_id, int(index), label)
    (item,) = store.results(job_id, int(index), 1)
    return jsonify(item_view(item, False))


@bp.get("/jobs/<job_id>/labelled.zip")
def labelled_zip(job_id: str):
    """The digits the model saw with their human labels, as a labelled set (images + labels.csv)."""
    job = _load(job_id)
    raw = request.args.get("min_confidence")
    try:
        floor = None if raw is None else float(raw)
    except ValueError:
        floor = -1.0
    if floor is not None and not 0.0 <= floor <= 1.0:
        raise ApiError(400, "bad_request", "`min_confidence` must be a number between 0 and 1")
    from web.labelled_export import labelled_zip as build

    data, count = build(svc().store, job, floor)
    headers = {"Content-Disposition": f'attachment; filename="digitflow-{job_id}-labelled.zip"',
               "X-Digitflow-Items": str(count)}
    return Response(data, mimetype="application/zip", headers=headers)


@bp.get("/models")
def models():
    """The model versions in MODEL_DIR with their cards, and the one serving."""
    from digitflow.contract import list_versions, serving_target

    s = svc()
    serving = s.model["version"]
    refused = s.refused_models().get(serving_target(s.settings.model_dir))
    if refused:  # the workers would not load what the pointer names: the previous model still serves
        serving = refused["serving"]
    keep = ("version", "architecture", "parameters", "macs_per_image", "test_accuracy", "validation_accuracy",
            "real_sets", "calibration", "parent", "labelled_sets", "training_seconds")
    versions = [{k: card[k] for k in keep if k in card} for card in list_versions(s.settings.model_dir)]
    return jsonify({"serving": serving, "versions": versions, **({"refused": refused} if refused else {})})
