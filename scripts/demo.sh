#!/usr/bin/env bash
# Install watchkeeper into ./.venv and run the full demo: a simulated fraud classifier (two versions, a
# latency incident, drifting traffic, late labels) under a real server with live traffic, the default alert
# rules notifying a local webhook sink, and the dashboard at the address it prints (http://127.0.0.1:8765/).
# Options go to `watchkeeper demo` (--dir, --port, --hours, --duration, --no-browser-hint); Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
exec .venv/bin/watchkeeper demo "$@"
