#!/usr/bin/env bash
# Run the whole service in the foreground: Redis, workers, web on http://127.0.0.1:${PORT:-5000}.
source "$(dirname "$0")/setup.sh"
exec .venv/bin/python scripts/stack.py
