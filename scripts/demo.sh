#!/usr/bin/env bash
# Install watchkeeper into ./.venv and run the demo: a training run logged into the embedded store
# (./.watchkeeper), then shown with `watchkeeper runs show`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
exec .venv/bin/watchkeeper demo "$@"
