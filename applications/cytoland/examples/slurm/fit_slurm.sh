#!/usr/bin/env bash
# Train a Cytoland virtual staining model on a SLURM GPU node with DDP: `sbatch fit_slurm.sh`.
#
# - One task per GPU: --ntasks-per-node must equal --gres=gpu:N; the script passes that
#   number to trainer.devices, so the two cannot disagree.
# - Preemption/time limit: SLURM sends SIGUSR1 two minutes before the end; Lightning's
#   SLURM plugin saves a checkpoint and requeues the job (--requeue). On restart the
#   script resumes from <CKPT_DIR>/last.ckpt (ModelCheckpoint(save_last=True) in the config).
#
# Override with environment variables: CONFIG, CKPT_DIR, VENV.
#SBATCH --job-name=cytoland-fit
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=14
#SBATCH --mem-per-cpu=8G
#SBATCH --time=2-00:00:00
#SBATCH --partition=gpu
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=SIGUSR1@120
#SBATCH --output=slurm-%x-%j.out

set -euo pipefail

CONFIG="${CONFIG:-fit_3d.yml}"
# must be the dirpath of the ModelCheckpoint callback in $CONFIG
CKPT_DIR="${CKPT_DIR:-cytoland_demo/runs/fit_3d/checkpoints}"
VENV="${VENV:-.venv}"

if [[ ! -f "$CONFIG" ]]; then
  echo "config not found: $CONFIG" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

DEVICES="${SLURM_NTASKS_PER_NODE:-1}"
NODES="${SLURM_JOB_NUM_NODES:-1}"

RESUME=()
if [[ -f "$CKPT_DIR/last.ckpt" ]]; then
  echo "resuming from $CKPT_DIR/last.ckpt (restart ${SLURM_RESTART_COUNT:-0})"
  RESUME=(--ckpt_path "$CKPT_DIR/last.ckpt")
fi

export PYTHONUNBUFFERED=1
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"

echo "job $SLURM_JOB_ID on $(hostname): $NODES node(s) x $DEVICES GPU(s)"
srun cytoland fit -c "$CONFIG" \
  --trainer.accelerator gpu \
  --trainer.strategy ddp \
  --trainer.devices "$DEVICES" \
  --trainer.num_nodes "$NODES" \
  --trainer.precision bf16-mixed \
  "${RESUME[@]}"
