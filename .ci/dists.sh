#!/usr/bin/env bash
# Build the sdist and wheel of every published package, check them with twine, then install
# each wheel in a fresh virtual environment (with the workspace wheels it depends on) and import
# it. Used by .ci/run and by the release workflow. Usage: bash .ci/dists.sh [DIST_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

dist="${1:-dist}"
# distribution -> import name; viscy-dev (dev-only tooling) is never published
declare -A IMPORTS=(
  [viscy-data]=viscy_data
  [viscy-transforms]=viscy_transforms
  [viscy-models]=viscy_models
  [viscy-utils]=viscy_utils
  [dynaclr]=dynaclr
  [cytoland]=cytoland
)
PACKAGES=()
for name in viscy-data viscy-transforms viscy-models viscy-utils dynaclr cytoland; do
  if [ -f "packages/$name/pyproject.toml" ] || [ -f "applications/$name/pyproject.toml" ]; then
    PACKAGES+=("$name")
  fi
done

rm -rf "$dist"
for name in "${PACKAGES[@]}"; do
  uv build --quiet --package "$name" --out-dir "$dist"
done
echo "built: $(ls "$dist" | tr '\n' ' ')"
uvx --quiet twine check --strict "$dist"/*

# wheel of a distribution in $dist (names are normalized with underscores in wheel file names)
wheel_of() { ls "$dist"/"${1//-/_}"-*.whl; }

# workspace distributions a wheel requires (non-optional Requires-Dist), recursively
local_requirements() {
  python3 - "$1" "${PACKAGES[@]}" <<'PY'
import re, sys, zipfile
wheel, ours = sys.argv[1], set(sys.argv[2:])
with zipfile.ZipFile(wheel) as zf:
    meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    text = zf.read(meta).decode()
for line in text.splitlines():
    if line.startswith("Requires-Dist:") and "extra ==" not in line:
        name = re.split(r"[\s\[<>=!~;(]", line.split(":", 1)[1].strip())[0].lower().replace("_", "-")
        if name in ours:
            print(name)
PY
}

closure() {
  local todo=("$1") seen=() name
  while [ "${#todo[@]}" -gt 0 ]; do
    name="${todo[0]}"; todo=("${todo[@]:1}")
    [[ " ${seen[*]} " == *" $name "* ]] && continue
    seen+=("$name")
    mapfile -t deps < <(local_requirements "$(wheel_of "$name")")
    todo+=("${deps[@]}")
  done
  printf '%s\n' "${seen[@]}"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in "${PACKAGES[@]}"; do
  venv="$tmp/$name"
  uv venv --quiet --python 3.11 "$venv"
  wheels=()
  while read -r dep; do wheels+=("$(wheel_of "$dep")"); done < <(closure "$name")
  uv pip install --quiet --python "$venv/bin/python" "${wheels[@]}"
  # every public name resolves; one behind a missing extra must say which extra to install
  (cd "$tmp" && "$venv/bin/python" - "${IMPORTS[$name]}" <<'PY'
import importlib, sys
m = importlib.import_module(sys.argv[1])
guarded = []
for n in m.__all__:
    try:
        getattr(m, n)
    except ImportError as err:
        if "pip install" not in str(err):
            raise
        guarded.append(n)
print(f"{sys.argv[1]}: {len(m.__all__)} public names, {len(guarded)} behind an extra")
PY
  )
done
echo "every wheel installs and imports in a fresh venv"
