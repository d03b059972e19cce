"""The contrastive LightningModule of DynaCLR.

`ContrastiveModule` wraps any encoder that maps a (B, C, Z, Y, X) batch to
``(features, projections)`` and trains it with either a triplet margin loss
(anchor, positive, negative) or an NT-Xent family loss (anchor/positive pairs,
every other sample of the batch is a negative).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from dynaclr._logging import log_loss

__all__ = ["ContrastiveModule", "render_triplet_grid"]

_TRIPLET_LOSSES = (nn.TripletMarginLoss, nn.TripletMarginWithDistanceLoss)
_SCHEDULE_ALIASES = {
    "warmupcosine": "WarmupCosine",
    "warmup-cosine": "WarmupCosine",
    "warmup_cosine": "WarmupCosine",
    "constant": "Constant",
}


def is_pair_loss(loss_function: nn.Module) -> bool:
    """Whether ``loss_function`` is called as ``loss(embeddings, labels)``.

    Triplet margin losses take ``(anchor, positive, negative)``; every other loss
    is treated as an NT-Xent family loss in the pytorch-metric-learning calling
    convention (rows with equal labels are positive pairs, all others negatives).
    """
    return not isinstance(loss_function, _TRIPLET_LOSSES)


def _normalize_schedule(schedule: str) -> str:
    key = schedule.strip().lower()
    if key in _SCHEDULE_ALIASES:
        return _SCHEDULE_ALIASES[key]
    raise ValueError(
        f"Unknown learning-rate schedule {schedule!r}; expected 'WarmupCosine' or 'Constant'."
    )


def _to_display(image: Tensor) -> np.ndarray:
    """Scale one 2-D image to [0, 1] using its 1st-99th percentile range."""
    img = image.detach().float().cpu()
    lo, hi = torch.quantile(img.flatten(), torch.tensor([0.01, 0.99]))
    if hi <= lo:
        return np.zeros(img.shape, dtype=np.float32)
    return ((img - lo) / (hi - lo)).clamp(0, 1).numpy().astype(np.float32)


def render_triplet_grid(views: dict[str, Tensor], max_samples: int = 8, gap: int = 2) -> np.ndarray:
    """Render a grid of crops: one row per sample, one column per (view, channel).

    Parameters
    ----------
    views : dict[str, Tensor]
        Mapping from view name (e.g. ``"anchor"``, ``"positive"``, ``"negative"``)
        to a (B, C, Z, Y, X) or (B, C, Y, X) tensor. The middle z slice is shown.
    max_samples : int
        Rows to draw.
    gap : int
        Pixels of white space between tiles.

    Returns
    -------
    np.ndarray
        uint8 image of shape (H, W, 3).
    """
    if not views:
        raise ValueError("render_triplet_grid needs at least one view")
    rows = []
    n = min(max_samples, min(v.shape[0] for v in views.values()))
    for i in range(n):
        tiles = []
        for tensor in views.values():
            sample = tensor[i]
            if sample.ndim == 4:
                sample = sample[:, sample.shape[1] // 2]
            for channel in sample:
                tiles.append(_to_display(channel))
        height = max(t.shape[0] for t in tiles)
        row = []
        for t in tiles:
            padded = np.ones((height, t.shape[1] + gap), dtype=np.float32)
            padded[: t.shape[0], : t.shape[1]] = t
            row.append(padded)
        rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    canvas = []
    for r in rows:
        padded = np.ones((r.shape[0] + gap, width), dtype=np.float32)
        padded[: r.shape[0], : r.shape[1]] = r
        canvas.append(padded)
    grid = np.concatenate(canvas, axis=0)
    return np.repeat((grid * 255).round().astype(np.uint8)[..., None], 3, axis=-1)


class ContrastiveModule(LightningModule):
    """Contrastive learning of cell embeddings.

    Parameters
    ----------
    encoder : nn.Module
        Maps a (B, C, Z, Y, X) tensor to ``(features, projections)``; the loss is
        computed on the projections, embeddings are written from either.
    loss_function : nn.Module
        ``nn.TripletMarginLoss`` (needs ``"negative"`` in the batch) or an NT-Xent
        family loss called as ``loss(embeddings, labels)`` (e.g.
        ``viscy_models.contrastive.loss.NTXentHCL`` or pytorch-metric-learning's
        ``NTXentLoss``), which uses the other samples of the batch as negatives.
    lr : float
        Peak learning rate of AdamW.
    schedule : {"Constant", "WarmupCosine"}
        ``"WarmupCosine"``: linear warmup over ``warmup_epochs`` then cosine decay to
        zero at ``trainer.max_epochs`` (stepped once per epoch).
    warmup_epochs : int
        Epochs of linear warmup for ``"WarmupCosine"``.
    weight_decay : float
        AdamW weight decay.
    log_batches_per_epoch : int
        Number of training/validation batches per epoch whose samples go into the
        logged image grid.
    log_samples_per_batch : int
        Samples taken from each of those batches.
    log_images_every_n_epochs : int
        Log image grids at epochs divisible by this; 0 disables image logging.
    log_embeddings : bool
        Kept for configuration compatibility; embeddings are written at predict time
        by ``viscy_utils.callbacks.EmbeddingWriter``.
    example_input_array_shape : Sequence[int] | None
        Shape of a dummy input used by Lightning's model summary; None skips it.
    """

    #: names of the ONNX graph's outputs (``dynaclr export``)
    onnx_output_names = ("features", "projections")

    def __init__(
        self,
        encoder: nn.Module,
        loss_function: nn.Module | None = None,
        lr: float = 1e-3,
        schedule: Literal["Constant", "WarmupCosine"] = "Constant",
        warmup_epochs: int = 3,
        weight_decay: float = 0.01,
        log_batches_per_epoch: int = 8,
        log_samples_per_batch: int = 1,
        log_images_every_n_epochs: int = 1,
        log_embeddings: bool = False,
        example_input_array_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "loss_function"])
        self.model = encoder
        self.loss_function = (
            loss_function if loss_function is not None else nn.TripletMarginLoss(margin=0.5)
        )
        self.lr = lr
        self.schedule = _normalize_schedule(schedule)
        self.warmup_epochs = warmup_epochs
        self.weight_decay = weight_decay
        self.log_batches_per_epoch = log_batches_per_epoch
        self.log_samples_per_batch = log_samples_per_batch
        self.log_images_every_n_epochs = log_images_every_n_epochs
        self.log_embeddings = log_embeddings
        if example_input_array_shape is not None:
            self.example_input_array = torch.rand(*example_input_array_shape)
        self._image_samples: dict[str, list[dict[str, Tensor]]] = {"train": [], "val": []}

    @property
    def uses_pair_loss(self) -> bool:
        """True when the loss is an NT-Xent family loss on anchor/positive pairs."""
        return is_pair_loss(self.loss_function)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(features, projections)`` of the encoder."""
        return self.model(x)

    # ------------------------------------------------------------------ loss
    def _contrastive_step(self, batch: dict[str, Any], stage: str) -> Tensor:
        anchor = batch["anchor"]
        positive = batch["positive"]
        if self.uses_pair_loss:
            _, projections = self.model(torch.cat([anchor, positive]))
            anchor_proj, positive_proj = projections.chunk(2)
            n = anchor_proj.shape[0]
            labels = torch.arange(n, device=anchor_proj.device).repeat(2)
            loss = self.loss_function(torch.cat([anchor_proj, positive_proj]), labels)
            negative_proj = None
        else:
            if "negative" not in batch:
                raise KeyError(
                    f"{type(self.loss_function).__name__} needs a 'negative' crop in every "
                    "batch: set return_negative=True on the data module, or use an NT-Xent "
                    "loss (e.g. viscy_models.contrastive.loss.NTXentHCL)."
                )
            negative = batch["negative"]
            _, projections = self.model(torch.cat([anchor, positive, negative]))
            anchor_proj, positive_proj, negative_proj = projections.chunk(3)
            loss = self.loss_function(anchor_proj, positive_proj, negative_proj)
        self._log_similarities(anchor_proj, positive_proj, negative_proj, stage)
        log_loss(self, loss, stage, anchor.shape[0])
        return loss

    @torch.no_grad()
    def _log_similarities(
        self, anchor: Tensor, positive: Tensor, negative: Tensor | None, stage: str
    ) -> None:
        a = F.normalize(anchor.detach().float(), dim=1)
        p = F.normalize(positive.detach().float(), dim=1)
        pos_sim = (a * p).sum(dim=1).mean()
        if negative is not None:
            neg_sim = (a * F.normalize(negative.detach().float(), dim=1)).sum(dim=1).mean()
        else:
            n = a.shape[0]
            sim = a @ p.T
            off_diagonal = ~torch.eye(n, dtype=torch.bool, device=sim.device)
            neg_sim = sim[off_diagonal].mean() if n > 1 else torch.zeros((), device=a.device)
        self.log_dict(
            {
                f"metrics/cosine_similarity_positive/{stage}": pos_sim,
                f"metrics/cosine_similarity_negative/{stage}": neg_sim,
                f"metrics/cosine_similarity_gap/{stage}": pos_sim - neg_sim,
            },
            on_step=False,
            on_epoch=True,
            sync_dist=stage != "train",
            batch_size=a.shape[0],
        )

    # ----------------------------------------------------------- lightning
    def on_train_epoch_start(self) -> None:
        set_epoch = getattr(self.loss_function, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.current_epoch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self._contrastive_step(batch, "train")
        self._collect_images(batch, batch_idx, "train")
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self._contrastive_step(batch, "val")
        self._collect_images(batch, batch_idx, "val")
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_image_grid("train")

    def on_validation_epoch_end(self) -> None:
        self._log_image_grid("val")

    def predict_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        """Embed ``batch["anchor"]``.

        Returns
        -------
        dict
            ``{"features": (B, D), "projections": (B, P), "index": batch["index"]}``,
            the input of ``viscy_utils.callbacks.EmbeddingWriter``.
        """
        features, projections = self.model(batch["anchor"])
        return {"features": features, "projections": projections, "index": batch.get("index")}

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.schedule == "Constant":
            return optimizer
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        if max_epochs is None or max_epochs < 0:
            max_epochs = 1000
        warmup = max(0, min(self.warmup_epochs, max_epochs - 1))

        def lr_factor(epoch: int) -> float:
            if epoch < warmup:
                return (epoch + 1) / (warmup + 1)
            progress = (epoch - warmup) / max(1, max_epochs - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1},
        }

    # ---------------------------------------------------------- image logs
    def _images_due(self) -> bool:
        every = self.log_images_every_n_epochs
        return every > 0 and self.current_epoch % every == 0 and self.log_batches_per_epoch > 0

    def _collect_images(self, batch: dict[str, Any], batch_idx: int, stage: str) -> None:
        if not self._images_due() or batch_idx >= self.log_batches_per_epoch:
            return
        k = self.log_samples_per_batch
        views = {
            key: batch[key][:k].detach().cpu()
            for key in ("anchor", "positive", "negative")
            if key in batch
        }
        self._image_samples[stage].append(views)

    def _log_image_grid(self, stage: str) -> None:
        collected = self._image_samples[stage]
        self._image_samples[stage] = []
        if not collected or self.logger is None:
            return
        experiment = getattr(self.logger, "experiment", None)
        add_image = getattr(experiment, "add_image", None)
        if not callable(add_image):
            return
        views = {key: torch.cat([c[key] for c in collected]) for key in collected[0]}
        grid = render_triplet_grid(views, max_samples=views["anchor"].shape[0])
        add_image(f"{stage}_samples", grid, self.current_epoch, dataformats="HWC")
