#!/usr/bin/env bash
# Install viscy-data without extras into a fresh venv: it imports, and features that need an
# extra raise an ImportError naming that extra.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
uv venv --quiet --python 3.11 "$tmp/venv"
# The lockfile pins the core dependencies; install them, then viscy-data itself without extras.
uv export --quiet --package viscy-data --no-dev --no-hashes --no-emit-workspace \
  --format requirements-txt -o "$tmp/req.txt"
VIRTUAL_ENV="$tmp/venv" uv pip install --quiet -r "$tmp/req.txt"
VIRTUAL_ENV="$tmp/venv" uv pip install --quiet --no-deps ./packages/viscy-data
"$tmp/venv/bin/python" .ci/check_minimal_deps.py
