"""Logging shared by the DynaCLR LightningModules."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule
from torch import Tensor

__all__ = ["log_loss"]


def log_loss(module: LightningModule, loss: Tensor, stage: str, batch_size: int) -> None:
    """Log ``loss/<stage>``: per step and per epoch in training, per epoch (synced across
    ranks) otherwise, on the progress bar."""
    module.log(
        f"loss/{stage}",
        loss.to(torch.float32),
        on_step=stage == "train",
        on_epoch=True,
        prog_bar=True,
        sync_dist=stage != "train",
        batch_size=batch_size,
    )
