#!/usr/bin/env bash
# Recreate the 0.1.0 oracle: the published releases from PyPI in a venv of their own.
#   bash tools/compat/make_oracle_venv.sh [VENV_DIR]        (default: ./.oracle-venv)
# then: VISCY_ORACLE=VENV_DIR/bin/python uv run pytest tools/compat
set -euo pipefail
venv="${1:-.oracle-venv}"
uv venv -p 3.12 "$venv"
VIRTUAL_ENV="$venv" uv pip install --python "$venv/bin/python" \
    "viscy-data[all]==0.1.0" "viscy-transforms==0.1.0" "viscy-models==0.1.0" \
    "viscy-utils==0.1.0" "pytorch-metric-learning"
"$venv/bin/python" -c "import viscy_data, viscy_transforms, viscy_models, viscy_utils; print('oracle ready:', '$venv/bin/python')"
