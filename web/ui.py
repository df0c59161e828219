"""Pages: draw (/), bulk upload (/upload), a shareable job page (/jobs/<id>), its review page (/jobs/<id>/review),
and the token prompt."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

bp = Blueprint("ui", __name__)


def _keys():
    return current_app.extensions["digitflow"].keys


def _token_required() -> bool:
    return _keys().required and _keys().client(session.get("token", "")) is None


@bp.before_request
def ask_for_token():
    if request.endpoint in ("ui.login", "static") or not _token_required():
        return None
    return redirect(url_for("ui.login", next=request.path))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Ask for an API key (any of API_KEYS, or API_TOKEN) once; keep it in the signed session cookie (never
    in a page)."""
    error = None
    if request.method == "POST":
        given = request.form.get("token", "")
        if _keys().client(given) is not None:
            session["token"] = given
            session.permanent = True
            target = request.args.get("next", "/")
            return redirect(target if target.startswith("/") and not target.startswith("//") else "/")
        error = "That token is not valid."
    return render_template("login.html", error=error), (401 if error else 200)


@bp.get("/")
def draw():
    return render_template("draw.html")


@bp.get("/upload")
def upload():
    return render_template("upload.html", job_id=None)


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    return render_template("upload.html", job_id=job_id)


@bp.get("/jobs/<job_id>/review")
def review_page(job_id: str):
    """Review a bulk job one digit at a time: accept or correct each prediction (keyboard, mouse or touch)."""
    return render_template("review.html", job_id=job_id)
