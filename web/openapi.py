"""The OpenAPI 3 document of the API (a test checks it describes every route) and the docs page."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, render_template_string, send_from_directory

bp = Blueprint("openapi", __name__, url_prefix="/api")

NULLABLE_STR = {"type": "string", "nullable": True}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
}
MODEL = {
    "type": "object",
    "required": ["version", "architecture", "test_accuracy"],
    "properties": {"version": {"type": "string"}, "architecture": {"type": "string"},
                   "test_accuracy": {"type": "number", "nullable": True}},
}
JOB = {
    "type": "object",
    "required": ["id", "status", "total", "done", "failed", "created_at", "started_at", "finished_at", "expires_at", "model"],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
        "total": {"type": "integer"}, "done": {"type": "integer"}, "failed": {"type": "integer"},
        "reviewed": {"type": "integer", "description": "items with a human label"},
        "created_at": NULLABLE_STR, "started_at": NULLABLE_STR, "finished_at": NULLABLE_STR, "expires_at": NULLABLE_STR,
        "model": {"$ref": "#/components/schemas/Model"},
        "client": {"type": "string", "description": "the API key (its name) that owns the job; absent on an open service"},
        "callback_url": {"type": "string", "description": "where the job's end event goes (webhooks)"},
        "webhook": {"$ref": "#/components/schemas/WebhookState"},
        "links": {"type": "object"},
    },
}
ITEM = {
    "type": "object",
    "required": ["index", "filename", "status", "digit", "confidence", "error", "label", "corrected", "model_version"],
    "properties": {
        "index": {"type": "integer"}, "filename": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "done", "error"]},
        "digit": {"type": "integer", "nullable": True, "minimum": 0, "maximum": 9},
        "confidence": {"type": "number", "nullable": True},
        "label": {"type": "integer", "nullable": True, "minimum": 0, "maximum": 9,
                  "description": "the human label (set or accepted by a reviewer)"},
        "corrected": {"type": "boolean", "description": "the label differs from the prediction"},
        "model_version": {"type": "string", "nullable": True, "description": "the model that computed the prediction"},
        "error": {"type": "object", "nullable": True, "required": ["code", "message"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        "probabilities": {"type": "array", "nullable": True, "items": {"type": "number"}},
    },
}
PREDICTION = {
    "type": "object",
    "required": ["digit", "confidence", "probabilities", "image", "model"],
    "properties": {
        "digit": {"type": "integer", "minimum": 0, "maximum": 9},
        "confidence": {"type": "number"},
        "probabilities": {"type": "array", "items": {"type": "number"}, "minItems": 10, "maxItems": 10},
        "image": {"type": "string", "description": "the 28x28 image the model saw, as a PNG data URL"},
        "model_version": {"type": "string", "description": "the model that computed this prediction"},
        "model": {"$ref": "#/components/schemas/Model"},
        "job_id": {"type": "string"},
    },
}


WEBHOOK_STATE = {
    "type": "object", "required": ["status", "attempts"],
    "description": "delivery of the end event, for a job with a callback_url",
    "properties": {"status": {"type": "string", "enum": ["waiting", "pending", "delivered", "failed"],
                              "description": "waiting: the job runs; pending: being delivered (or retried)"},
                   "attempts": {"type": "integer"}, "error": {"type": "string", "description": "the last failure"}},
}
EVENT = {
    "type": "object", "required": ["id", "type", "created_at", "data"],
    "properties": {
        "id": {"type": "string", "description": "the same on every retry: receivers dedupe by it"},
        "type": {"type": "string", "enum": ["job.succeeded", "job.failed", "job.cancelled"]},
        "created_at": {"type": "string", "description": "when the job ended (ISO 8601)"},
        "data": {"$ref": "#/components/schemas/Job"},
    },
}
CALLBACK_URL = {
    "type": "string", "maxLength": 2048,
    "description": "optional: an http(s) URL that receives the job's end event (see the callback). Only public "
                   "destinations, or receivers named in WEBHOOK_ALLOWED_HOSTS; 400 `invalid_callback_url` "
                   "(not http(s), over 2048 characters, credentials, malformed), `callback_url_not_allowed` "
                   "(a loopback, private, link-local, carrier-grade NAT, metadata or other non-public address, "
                   "also after DNS resolution or written in another form such as 2130706433), "
                   "`webhooks_disabled` (WEBHOOK_SECRET not set)",
}
JOB_ENDED = {"{$request.body#/callback_url}": {"post": {
    "summary": "The job's end event (at least once; retried with backoff for about an hour)",
    "description": "POSTed once the job succeeded, failed or was cancelled. Verify `Digitflow-Signature` "
                   "(t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\" keyed with WEBHOOK_SECRET>) and "
                   "dedupe by the event id. Redirects are not followed; any answer but 2xx is retried, the first "
                   "time within 2 s, then with doubling delays.",
    "parameters": [{"name": "Digitflow-Signature", "in": "header", "required": True, "schema": {"type": "string"}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}}},
    "responses": {"2XX": {"description": "delivered"}},
}}}


def _err(*statuses: int) -> dict:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
    "description": "retrying with the same key and the same request (per API key, for the job's lifetime) "
                   "returns the original job or answer, with `Idempotent-Replayed: true`, and does no new work",
}
IDEMPOTENCY_409 = {"409": {
    "description": "`idempotency_conflict`: the key was used for another request; `idempotency_in_progress`: "
                   "the first request with it is still being processed (Retry-After)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
COMMON = (401, 404, 429, 503)

SPEC = {
    "openapi": "3.0.3",  # Swagger UI 4 (swagger-ui-bundle) renders 3.0 documents
    "info": {"title": "digitflow", "version": "1.0.0",
             "description": "Handwritten-digit recognition: single predictions and bulk jobs."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": ERROR, "Model": MODEL, "Job": JOB, "Item": ITEM, "Prediction": PREDICTION,
                    "Event": EVENT, "WebhookState": WEBHOOK_STATE},
        "responses": {
            f"E{s}": {"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for s, d in [(400, "bad request"), (401, "missing or wrong token"), (404, "no such job"),
                         (405, "method not allowed"), (413, "too large"), (414, "URL longer than 4 KB"), (415, "unsupported media type"),
                         (422, "unprocessable input"), (429, "rate limited"), (503, "unavailable")]
        },
    },
    "security": [{"bearer": []}, {}],
    "paths": {
        "/api/v1/predict": {"post": {
            "summary": "Predict one digit",
            "parameters": [{"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 30}},
                           IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                                   "properties": {"image": {"type": "string", "format": "binary"}}}},
                "application/json": {"schema": {"type": "object", "properties": {
                    "image": {"type": "string", "description": "data:image/png;base64,..."},
                    "pixels": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}},
            }},
            "responses": {
                "200": {"description": "the prediction", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}}},
                "202": {"description": "not ready within `wait`; poll the job", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["job_id", "status_url"],
                    "properties": {"job_id": {"type": "string"}, "status_url": {"type": "string"}}}}}},
                **IDEMPOTENCY_409,
                **_err(400, 401, 413, 415, 422, 429, 503),
            },
        }},
        "/api/v1/jobs": {"get": {
            "summary": "The caller's bulk jobs (its API key's), newest first, paged",
            "parameters": [{"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}],
            "responses": {
                "200": {"description": "a page", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["items", "total", "next"],
                    "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                                   "total": {"type": "integer"}, "next": {"type": "string", "nullable": True}}}}}},
                **_err(400, 401, 429, 503)},
        }, "post": {
            "summary": "Submit a bulk job (a ZIP, or several images)",
            "parameters": [IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                               "callback_url": CALLBACK_URL}}}}},
            "callbacks": {"jobEnded": JOB_ENDED},
            "responses": {
                "202": {"description": "accepted", "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                **IDEMPOTENCY_409,
                **_err(400, 401, 404, 413, 415, 422, 429, 503),
            },
        }},
        "/api/v1/jobs/{job_id}": {
            "parameters": [JOB_ID],
            "get": {"summary": "A job's status and progress", "responses": {
                "200": {"description": "the job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                **_err(*COMMON)}},
            "delete": {"summary": "Cancel a running job (202) or delete a finished one (204)", "responses": {
                "202": {"description": "cancelled", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                "204": {"description": "deleted"},
                "200": {"description": "it ended on its own before the cancel landed: the job as it ended",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                **_err(*COMMON)}},
        },
        "/api/v1/jobs/{job_id}/results": {"get": {
            "summary": "A page of results in input order",
            "parameters": [JOB_ID,
                           {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                           {"name": "include", "in": "query", "schema": {"type": "string", "enum": ["probabilities"]}}],
            "responses": {
                "200": {"description": "a page", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["items", "total", "next"],
                    "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                                   "total": {"type": "integer"}, "next": {"type": "string", "nullable": True}}}}}},
                **_err(400, *COMMON)},
        }},
        "/api/v1/jobs/{job_id}/results/{index}.png": {"get": {
            "summary": "The normalised 28x28 digit the model saw",
            "parameters": [JOB_ID, {"name": "index", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "PNG", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
                          **_err(*COMMON)},
        }},
        "/api/v1/jobs/{job_id}/results/{index}/original": {"get": {
            "summary": "A small preview of the upload (longest side <= 96 px), kept for review",
            "parameters": [JOB_ID, {"name": "index", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "PNG, JPEG, GIF or WebP", "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}},
                          **_err(*COMMON)},
        }},
        "/api/v1/jobs/{job_id}/results.csv": {"get": {
            "summary": "All results as CSV (index,filename,status,digit,confidence,label,corrected,model_version,error)",
            "parameters": [JOB_ID],
            "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                          **_err(*COMMON)},
        }},
        "/api/v1/jobs/{job_id}/results/{index}/label": {"put": {
            "summary": "Set (0-9) or clear (null) the human label of one result",
            "parameters": [JOB_ID, {"name": "index", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["label"],
                "properties": {"label": {"type": "integer", "minimum": 0, "maximum": 9, "nullable": True}}}}}},
            "responses": {"200": {"description": "the item with its label", "content": {"application/json": {
                              "schema": {"$ref": "#/components/schemas/Item"}}}},
                          "409": {"description": "the item has no prediction (pending or failed)", "content": {
                              "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                          **_err(400, 413, 415, *COMMON)},
        }},
        "/api/v1/jobs/{job_id}/labelled.zip": {"get": {
            "summary": "The reviewed digits as a labelled set (28x28 PNGs + labels.csv: filename,label,source)",
            "parameters": [JOB_ID, {"name": "min_confidence", "in": "query", "schema": {
                "type": "number", "minimum": 0, "maximum": 1},
                "description": "also include unreviewed predictions at or above this confidence (source: predicted)"}],
            "responses": {"200": {"description": "ZIP", "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                          **_err(400, *COMMON)},
        }},
        "/api/v1/models": {"get": {
            "summary": "The model versions in MODEL_DIR (newest first, with their cards) and the one serving",
            "responses": {"200": {"description": "versions", "content": {"application/json": {"schema": {
                "type": "object", "required": ["serving", "versions"],
                "properties": {"serving": {"type": "string"}, "versions": {"type": "array", "items": {"type": "object"}},
                               "refused": {"type": "object", "description": "a version the workers refused to load"}}}}}},
                          **_err(401, 429, 503)},
        }},
        "/healthz": {"get": {"summary": "The process is up", "security": [],
                             "responses": {"200": {"description": "up", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/readyz": {"get": {"summary": "Redis, a worker of each kind with its model loaded, and the model card", "security": [],
                            "responses": {"200": {"description": "ready", "content": {"application/json": {"schema": {"type": "object"}}}},
                                          "503": {"description": "not ready", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    },
}

# Any URL may be too long: every operation documents the 414.
for _item in SPEC["paths"].values():
    for _op in _item.values():
        if isinstance(_op, dict) and "responses" in _op:
            _op["responses"].setdefault("414", {"$ref": "#/components/responses/E414"})

DOCS_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>digitflow API</title>
<link rel="stylesheet" href="{{ url_for('openapi.docs_asset', name='swagger-ui.css') }}"></head>
<body><div id="swagger-ui"></div>
<script src="{{ url_for('openapi.docs_asset', name='swagger-ui-bundle.js') }}"></script>
<script src="{{ url_for('openapi.docs_asset', name='docs-init.js') }}"></script></body></html>"""


@bp.get("/openapi.json")
def spec():
    return jsonify(SPEC)


@bp.get("/docs")
@bp.get("/docs/")
def docs():
    return render_template_string(DOCS_PAGE)


@bp.get("/docs/assets/<path:name>")
def docs_asset(name: str):
    if name == "docs-init.js":
        from flask import current_app

        return send_from_directory(current_app.static_folder, "docs-init.js")
    from swagger_ui_bundle import swagger_ui_path

    if name not in ("swagger-ui.css", "swagger-ui-bundle.js"):
        abort(404)
    return send_from_directory(swagger_ui_path, name)
