#!/usr/bin/env bash
# Install watchkeeper with every extra the tests use into ./.venv, then run the whole test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k store -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0  # the CPU build; see README
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,torch,spark]'
exec .venv/bin/python -m pytest "$@"
