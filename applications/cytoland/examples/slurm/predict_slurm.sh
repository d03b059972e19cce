#!/usr/bin/env bash
# Virtual staining of whole FOVs on a SLURM GPU node: `sbatch predict_slurm.sh`.
#
# One GPU (HCSPredictionWriter writes from one process). The output plate is written
# under a temporary name and moved into place at the end, so a preempted, requeued job
# starts again from scratch and never leaves a half-written plate.
#
# Override with environment variables: CONFIG, CKPT, VENV.
#SBATCH --job-name=cytoland-predict
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=14
#SBATCH --mem-per-cpu=8G
#SBATCH --time=0-04:00:00
#SBATCH --partition=gpu
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out

set -euo pipefail

CONFIG="${CONFIG:-predict_3d.yml}"
CKPT="${CKPT:-cytoland_demo/runs/fit_3d/checkpoints/last.ckpt}"
VENV="${VENV:-.venv}"

for f in "$CONFIG" "$CKPT"; do
  [[ -f "$f" ]] || { echo "not found: $f" >&2; exit 1; }
done
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export PYTHONUNBUFFERED=1

echo "job $SLURM_JOB_ID on $(hostname): virtual staining with $CKPT"
srun cytoland predict -c "$CONFIG" \
  --trainer.accelerator gpu \
  --trainer.devices 1 \
  --trainer.precision bf16-mixed \
  --ckpt_path "$CKPT"
