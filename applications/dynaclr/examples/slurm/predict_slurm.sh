#!/usr/bin/env bash
# Write DynaCLR embeddings on a SLURM GPU node: `sbatch predict_slurm.sh`.
#
# Prediction runs on one GPU (--ntasks-per-node=1 = trainer.devices) so the
# EmbeddingWriter gathers every cell in one process. A preempted job is requeued and
# simply runs again (the writer refuses to overwrite a finished output unless told to).
#
# Override with environment variables: CONFIG, CKPT, VENV.
#SBATCH --job-name=dynaclr-predict
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=14
#SBATCH --mem-per-cpu=8G
#SBATCH --time=0-04:00:00
#SBATCH --partition=gpu
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=SIGUSR1@60
#SBATCH --output=slurm-%x-%j.out

set -euo pipefail

CONFIG="${CONFIG:-predict.yml}"
CKPT="${CKPT:-demo_output/fit/checkpoints/last.ckpt}"
VENV="${VENV:-.venv}"

for f in "$CONFIG" "$CKPT"; do
  if [[ ! -f "$f" ]]; then
    echo "not found: $f" >&2
    exit 1
  fi
done
# shellcheck disable=SC1091
source "$VENV/bin/activate"

DEVICES="${SLURM_NTASKS_PER_NODE:-1}"
export PYTHONUNBUFFERED=1

echo "job $SLURM_JOB_ID on $(hostname): predicting with $CKPT"
srun dynaclr predict -c "$CONFIG" \
  --trainer.accelerator gpu \
  --trainer.devices "$DEVICES" \
  --trainer.precision 32-true \
  --ckpt_path "$CKPT"
