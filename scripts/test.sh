#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
PY=${PYTHON:-python3}
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
