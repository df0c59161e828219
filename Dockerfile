# One image for the web front end and the workers (no TensorFlow: serving needs ONNX Runtime only).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 MODEL_DIR=/app/models
WORKDIR /app
COPY pyproject.toml README.md ./
COPY digitflow ./digitflow
COPY web ./web
COPY worker ./worker
COPY model_training/__init__.py ./model_training/__init__.py
RUN pip install ".[web,worker,cli]" "flower>=2.0"
COPY gunicorn.conf.py ./
COPY models/model.onnx models/model_card.json ./models/
RUN useradd --create-home --uid 1000 digitflow
USER digitflow
EXPOSE 5000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "web:create_app()"]
