"""Naive peer for the benchmark: LitServe with dynamic batching serving the service's ONNX model.

One PNG per request, as the service's draw page sends it: JSON {"image": "data:image/png;base64,..."}.
The same decode + normalise (digitflow.imaging) and the same Engine as the service's workers; the
answer is the same record (digit, confidence, probabilities). Benchmark only (`pip install litserve`).

    python scripts/bench_peers/litserve_server.py --port 8001 [--model-dir models] [--threads 2]
"""

from __future__ import annotations

import argparse
import base64
import os

import litserve as ls
import numpy as np

from digitflow.imaging import normalise_bytes
from digitflow.settings import get_settings
from worker.engine import Engine, default_threads
from worker.pipeline import record


class DigitAPI(ls.LitAPI):
    def __init__(self, model_dir: str, threads: int, **kwargs):
        super().__init__(**kwargs)
        self.model_dir = model_dir
        self.threads = threads

    def setup(self, device):
        self.engine = Engine(self.model_dir, "onnx", self.threads)
        self.max_pixels = get_settings().max_image_pixels

    def decode_request(self, request):
        data_url = request["image"]
        return normalise_bytes(base64.b64decode(data_url.split(",", 1)[1]), self.max_pixels)

    def batch(self, inputs):
        return np.stack(inputs).astype(np.float32)[..., None] / 255.0

    def predict(self, x):
        return self.engine.predict(x)

    def unbatch(self, output):
        return list(output)

    def encode_response(self, output):
        return record(output, self.engine.model["version"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--model-dir", default=str(get_settings().model_dir))
    p.add_argument("--threads", type=int, default=default_threads())
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--batch-timeout", type=float, default=0.001)
    p.add_argument("--fast-queue", action="store_true", help="LitServe's ZeroMQ queue instead of multiprocessing")
    args = p.parse_args()
    os.environ.setdefault("LITSERVE_DISABLE_TELEMETRY", "1")
    api = DigitAPI(args.model_dir, args.threads, max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, fast_queue=args.fast_queue, timeout=60)
    server.run(host="127.0.0.1", port=args.port, num_api_servers=1, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
