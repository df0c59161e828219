#!/usr/bin/env bash
# Lint, then the whole test suite (real Redis, real workers, real browser). Extra arguments go to pytest.
EXTRAS=web,worker,cli,dev,train source "$(dirname "$0")/setup.sh"
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test: installing Debian's chromium for the browser tests" >&2
  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
    || echo "test: could not install chromium" >&2
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
