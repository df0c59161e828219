"""Celery workers: `celery -A worker worker -Q bulk` and `-Q interactive` (see README)."""

from worker.celery_app import app

__all__ = ["app"]
