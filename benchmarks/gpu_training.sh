#!/usr/bin/env bash
# The GPU training benchmark (python -m benchmarks.training) as one prepared script for a CUDA machine
# whose Python already has torch, lightning, tensorstore, timm and nvidia-ml-py but no network
# (this workplace's H200 "device" machine).
#
#   1. here, with network:   bash benchmarks/gpu_training.sh prepare
#      downloads the pure dependencies that machine lacks (iohub, zarr, monai, kornia,
#      jsonargparse, ...) as Python 3.12 wheels into .whl/ (git-ignored through
#      .git/info/exclude; about 30 MiB).
#   2. there (device tool: carry [".whl"], timeout_s 420):
#         bash benchmarks/gpu_training.sh run
#      installs the wheels into /tmp/site, puts the workspace's sources on PYTHONPATH and runs
#      `dynaclr fit` and `cytoland fit` (when present) for 60 steps each on a 1 GiB synthetic
#      plate (its `viscy rechunk` copy), writing $OUT/training.json. About 3-4 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

# name==version as in uv.lock (pure-Python or manylinux wheels for CPython 3.12)
WHEELS=(
  iohub==0.3.0a7 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
  blosc2==4.14.1 ndindex==1.10.1 numexpr==2.14.2 dask==2026.8.0 partd==1.4.2 locket==1.0.0
  importlib-metadata==10.2.0 lazy-importer==0.1.0 natsort==8.4.0 ndtiff==3.1.0
  pydantic==2.14.3 pydantic-core==2.50.4 pydantic-extra-types==2.11.1 annotated-types==0.8.0
  typing-inspection==0.4.5 monai==1.6.1 kornia==0.9.0 kornia-rs==0.2.0
  jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.14.0
  anndata==0.12.19 array-api-compat==1.16.0 legacy-api-wrap==1.5 scverse-misc==0.0.3
  session-info2==0.4.1 pytorch-metric-learning==2.9.0
)

prepare() {
  local exclude
  exclude="$(git rev-parse --git-common-dir)/info/exclude"
  grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
  mkdir -p .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any -d .whl "${WHEELS[@]}"
  du -sh .whl
}

run() {
  OUT="${OUT:-/tmp/bench_out}"
  PY="${PY:-python3}"        # the machine's Python (with torch, lightning, tensorstore)
  SITE="${SITE:-/tmp/site}"  # where the carried wheels are installed
  mkdir -p "$OUT"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl
  local src="$SITE"
  for d in packages/*/src applications/*/src; do src="$src:$PWD/$d"; done
  export PYTHONPATH="$src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c "import iohub, zarr, monai, kornia, jsonargparse, tensorstore, pynvml, timm
import dynaclr.cli, viscy_utils.rechunk; print('imports ok')"
  "$PY" -m benchmarks.training --workdir /tmp/bench_training --out "$OUT/training.json" \
    "$@" 2>&1 | tee "$OUT/training.log"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash benchmarks/gpu_training.sh prepare|run [training.py options]" >&2; exit 2 ;;
esac
