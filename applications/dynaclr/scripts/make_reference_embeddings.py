"""Regenerate the tiny reference checkpoint and embeddings used by test_reproducibility.py.

Run from the repository root:

    uv run python applications/dynaclr/scripts/make_reference_embeddings.py

It trains a ``ContrastiveModule`` whose encoder is a ``ContrastiveEncoder`` at toy sizes
(``dynaclr.TinyContrastiveEncoder``: the modules and state-dict keys of
``ContrastiveEncoder("convnext_tiny", ...)``, narrower) for a few steps with a real
Lightning Trainer on fixed random inputs; Lightning's ``ModelCheckpoint`` writes the
checkpoint (``last.ckpt``, well under 1 MB, copied here), then the module embeds fixed inputs
on CPU and the features and projections are stored. The test reloads the checkpoint and
must reproduce the embeddings (INFER-03): within stated tolerances across CPUs, exactly
from run to run.

(``ContrastiveEncoder``'s smallest public backbone, convnext_tiny, has 28.5M parameters: a
114 MB checkpoint, too large to commit. Its toy-width twin has the same keys.)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from dynaclr.engine import ContrastiveModule
from dynaclr.tiny_encoder import TinyContrastiveEncoder

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference"
ENCODER_KWARGS = {
    "in_channels": 2,
    "in_stack_depth": 5,
    "dims": (8, 12, 16, 24),
    "projection_dim": 8,
}
INPUT_SHAPE = (4, 2, 5, 32, 32)


def build_module() -> ContrastiveModule:
    """The module whose checkpoint is committed (same arguments in the test)."""
    return ContrastiveModule(
        TinyContrastiveEncoder(**ENCODER_KWARGS), nn.TripletMarginLoss(margin=0.5)
    )


def main(out_dir: Path = REFERENCE_DIR) -> None:
    seed_everything(0, verbose=False)
    g = torch.Generator().manual_seed(0)
    anchors = torch.rand(16, *INPUT_SHAPE[1:], generator=g)
    samples = [
        {"anchor": a, "positive": a.flip(-1), "negative": anchors[(i + 1) % len(anchors)]}
        for i, a in enumerate(anchors)
    ]
    module = build_module()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=4,
            logger=False,
            callbacks=[ModelCheckpoint(dirpath=tmp, save_last=True, save_top_k=0)],
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(module, DataLoader(samples, batch_size=4))
        shutil.copyfile(Path(tmp) / "last.ckpt", out_dir / "tiny_contrastive.ckpt")

    inputs = torch.rand(*INPUT_SHAPE, generator=g)
    module.eval()
    with torch.inference_mode():
        features, projections = module(inputs)
    torch.save(
        {"inputs": inputs, "features": features, "projections": projections},
        out_dir / "reference_embeddings.pt",
    )
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REFERENCE_DIR)
    main(parser.parse_args().out_dir)
