#!/usr/bin/env bash
# Recreate the 0.1.0 oracle: the published releases from PyPI in a venv of their own.
#   bash tools/compat/make_oracle_venv.sh [VENV_DIR]        (default: ./.oracle-venv)
# then: VISCY_ORACLE=VENV_DIR/bin/python uv run pytest tools/compat
# Also makes VENV_DIR-anndata: the same releases with viscy-utils[anndata,eval] (anndata pins
# another pandas, so it gets a venv of its own); the utils section runs its embedding-writer
# cases there (or in $VISCY_ORACLE_ANNDATA).
set -euo pipefail
venv="${1:-.oracle-venv}"
releases=("viscy-data[all]==0.1.0" "viscy-transforms==0.1.0" "viscy-models==0.1.0")
uv venv -p 3.12 "$venv"
VIRTUAL_ENV="$venv" uv pip install --python "$venv/bin/python" \
    "${releases[@]}" "viscy-utils==0.1.0" "pytorch-metric-learning"
"$venv/bin/python" -c "import viscy_data, viscy_transforms, viscy_models, viscy_utils; print('oracle ready:', '$venv/bin/python')"
uv venv -p "$("$venv/bin/python" -c 'import sys; print(sys.base_prefix)')/bin/python3" "$venv-anndata"
VIRTUAL_ENV="$venv-anndata" uv pip install --python "$venv-anndata/bin/python" \
    "${releases[@]}" "viscy-utils[anndata,eval]==0.1.0" "pytorch-metric-learning"
"$venv-anndata/bin/python" -c "import anndata, viscy_utils; print('anndata oracle ready:', '$venv-anndata/bin/python')"
