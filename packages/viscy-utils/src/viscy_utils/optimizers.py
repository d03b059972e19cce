"""Optimizer and learning-rate schedule factories for LightningModules."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, SequentialLR

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule

SCHEDULES = ("WarmupCosine", "Constant")


def configure_adamw_scheduler(
    module: LightningModule,
    model: torch.nn.Module,
    lr: float,
    schedule: str,
    warmup_steps: int = 3,
    warmup_multiplier: float = 1e-3,
) -> tuple[list, list]:
    """AdamW over ``model``'s parameters with a per-epoch learning-rate schedule.

    Parameters
    ----------
    module : LightningModule
        The module being trained; its trainer's ``max_epochs`` sets the cosine length.
    model : torch.nn.Module
        Whose parameters are optimized.
    lr : float
        Peak learning rate.
    schedule : {"WarmupCosine", "Constant"}
        ``"WarmupCosine"``: linear warmup from ``lr * warmup_multiplier`` over
        ``warmup_steps`` epochs, then cosine decay to 0 at ``max_epochs``.
        ``"Constant"``: ``lr`` throughout.
    warmup_steps : int
        Warmup epochs.
    warmup_multiplier : float
        Starting fraction of ``lr``.

    Returns
    -------
    tuple[list, list]
        ``([optimizer], [scheduler])``, as ``configure_optimizers`` returns.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    if schedule == "WarmupCosine":
        trainer = getattr(module, "_trainer", None)
        max_epochs = getattr(trainer, "max_epochs", None) or 100
        if max_epochs < 0:
            max_epochs = 100
        warmup = LinearLR(
            optimizer, start_factor=warmup_multiplier, end_factor=1.0, total_iters=warmup_steps
        )
        cosine = CosineAnnealingLR(optimizer, T_max=max(1, max_epochs - warmup_steps))
        scheduler = SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])
    elif schedule == "Constant":
        scheduler = ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:
        raise ValueError(f"Unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    return [optimizer], [scheduler]
