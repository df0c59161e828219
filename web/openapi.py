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


def _err(*statuses: int) -> dict:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
COMMON = (401, 404, 429, 503)

SPEC = {
    "openapi": "3.0.3",  # Swagger UI 4 (swagger-ui-bundle) renders 3.0 documents
    "info": {"title": "digitflow", "version": "1.0.0",
             "description": "Handwritten-digit recognition: single predictions and bulk jobs."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": ERROR, "Model": MODEL, "Job": JOB, "Item": ITEM, "Prediction": PREDICTION},
        "responses": {
            f"E{s}": {"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for s, d in [(400, "bad request"), (401, "missing or wrong token"), (404, "no such job"),
                         (405, "method not allowed"), (413, "too large"), (415, "unsupported media type"),
                         (422, "unprocessable input"), (429, "rate limited"), (503, "unavailable")]
        },
    },
    "security": [{"bearer": []}, {}],
    "paths": {
        "/api/v1/predict": {"post": {
            "summary": "Predict one digit",
            "parameters": [{"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 30}}],
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
                **_err(400, 401, 413, 415, 422, 429, 503),
            },
        }},
        "/api/v1/jobs": {"post": {
            "summary": "Submit a bulk job (a ZIP, or several images)",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}},
            "responses": {
                "202": {"description": "accepted", "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                **_err(400, 401, 413, 415, 422, 429, 503),
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
        "/readyz": {"get": {"summary": "Redis, a worker and the model are available", "security": [],
                            "responses": {"200": {"description": "ready", "content": {"application/json": {"schema": {"type": "object"}}}},
                                          "503": {"description": "not ready", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    },
}

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
