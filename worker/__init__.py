"""Workers: the Celery bulk worker (`celery -A worker worker -Q bulk`) and the drawing worker (`python -m worker.drawings`)."""

from digitflow.celery_app import app

__all__ = ["app"]
