"""Log a grid of sample images of a few batches to TensorBoard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from viscy_utils.log_images import detach_stacks, render_stack_grid


class ImageGridLogger(Callback):
    """Log input (and optionally prediction) images of the first batches as one RGB grid.

    Every ``every_n_epochs`` epochs, the first ``num_batches`` batches of the
    stage are rendered: one row per sample (up to ``samples_per_batch``), one
    tile per channel of each image key (middle Z slice), each tile
    contrast-stretched. The grid goes to ``logger.experiment.add_image`` (a
    TensorBoard ``SummaryWriter``); loggers without ``add_image`` are skipped.

    Parameters
    ----------
    keys : sequence of str
        Batch keys of image tensors ``(B, C, [Z,] Y, X)``, e.g.
        ``("anchor", "positive")`` or ``("source", "target")``.
    log_prediction : bool
        Also render the ``predict``-like output of the module's forward on the
        first key (``pl_module(batch[keys[0]])``; tuple outputs use element 0).
    every_n_epochs : int
    num_batches : int
        Batches rendered per logging epoch.
    samples_per_batch : int
    stages : sequence of {"train", "val"}
    cmaps : sequence of str
        Matplotlib colormap per key (default gray).
    tag : str
        Prefix of the image tag (``f"{tag}/{stage}"``).
    """

    def __init__(
        self,
        keys: Sequence[str] = ("source",),
        log_prediction: bool = False,
        every_n_epochs: int = 1,
        num_batches: int = 1,
        samples_per_batch: int = 4,
        stages: Sequence[str] = ("train", "val"),
        cmaps: Sequence[str] = (),
        tag: str = "samples",
    ) -> None:
        super().__init__()
        if not keys:
            raise ValueError("ImageGridLogger needs at least one image key")
        self.keys = tuple(keys)
        self.log_prediction = log_prediction
        self.every_n_epochs = every_n_epochs
        self.num_batches = num_batches
        self.samples_per_batch = samples_per_batch
        self.stages = tuple(stages)
        self.cmaps = tuple(cmaps)
        self.tag = tag
        self._rows: dict[str, list[list[np.ndarray]]] = {}

    def _collect(
        self, stage: str, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if stage not in self.stages or batch_idx >= self.num_batches:
            return
        if trainer.current_epoch % self.every_n_epochs or trainer.sanity_checking:
            return
        if not isinstance(batch, dict):
            return
        missing = [k for k in self.keys if k not in batch]
        if missing:
            raise KeyError(f"ImageGridLogger: batch has no key(s) {missing}; has {sorted(batch)}")
        images = [batch[k] for k in self.keys]
        if self.log_prediction:
            with torch.no_grad():
                out = pl_module(batch[self.keys[0]])
            images.append(out[0] if isinstance(out, tuple | list) else out)
        self._rows.setdefault(stage, []).extend(detach_stacks(images, self.samples_per_batch))

    def render(self, stage: str) -> np.ndarray | None:
        """The grid collected so far for ``stage`` as ``(H, W, 3)`` uint8, or None."""
        rows = self._rows.get(stage)
        return render_stack_grid(rows, self.cmaps) if rows else None

    def _flush(self, stage: str, trainer: Trainer) -> None:
        grid = self.render(stage)
        self._rows.pop(stage, None)
        if grid is None:
            return
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image(
                    f"{self.tag}/{stage}",
                    grid,
                    global_step=trainer.current_epoch,
                    dataformats="HWC",
                )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._collect("train", trainer, pl_module, batch, batch_idx)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._collect("val", trainer, pl_module, batch, batch_idx)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush("train", trainer)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush("val", trainer)
