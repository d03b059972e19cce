"""Save validation embeddings every few epochs, to watch a representation evolve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from viscy_utils.callbacks._collect import batch_column, batch_embeddings
from viscy_utils.callbacks.embedding_writer import write_embedding_dataset
from viscy_utils.tensor_utils import to_numpy


class EmbeddingSnapshotCallback(Callback):
    """Write the validation set's embeddings to ``output_dir`` every ``every_n_epochs``.

    Each snapshot is an AnnData store ``epoch_{epoch:04d}.zarr`` (``X`` features,
    ``obsm["X_projections"]``, ``obsm["X_pca"]``, ``obs`` from the batch
    ``index`` when present) plus, with ``store_images``, the middle Z slice of
    each anchor in ``epoch_{epoch:04d}_images.npy`` (float16, ``(N, C, Y, X)``).

    Parameters
    ----------
    output_dir : str or Path
    every_n_epochs : int
    store_images : bool
    pca_kwargs : dict, optional
        Arguments of :func:`viscy_utils.evaluation.compute_pca` (default 2 components).
    """

    def __init__(
        self,
        output_dir: str | Path,
        every_n_epochs: int = 10,
        store_images: bool = True,
        pca_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.every_n_epochs = every_n_epochs
        self.store_images = store_images
        self.pca_kwargs = {"n_components": 2} if pca_kwargs is None else pca_kwargs
        self._active = False
        self._reset()

    def _reset(self) -> None:
        self._features: list[np.ndarray] = []
        self._projections: list[np.ndarray | None] = []
        self._index: list[pd.DataFrame] = []
        self._images: list[np.ndarray] = []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start collecting on snapshot epochs (never during the sanity check)."""
        self._active = (
            not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0
        )
        self._reset()

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep this batch's embeddings, index columns and (optionally) images."""
        if not self._active:
            return
        features, projections = batch_embeddings(pl_module, batch, outputs)
        self._features.append(features)
        self._projections.append(projections)
        index = batch.get("index") if isinstance(batch, dict) else None
        columns = {}
        if isinstance(index, dict):
            for key in index:
                col = batch_column(batch, key, len(features))
                if col is not None:
                    columns[key] = col
        self._index.append(pd.DataFrame(columns, index=range(len(features))))
        if self.store_images and isinstance(batch, dict) and "anchor" in batch:
            anchor = batch["anchor"]
            if isinstance(anchor, torch.Tensor) and anchor.ndim == 5:
                anchor = anchor[:, :, anchor.shape[2] // 2]
            self._images.append(to_numpy(anchor).astype(np.float16))

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the snapshot (global rank 0 only)."""
        if not self._active or not self._features or trainer.global_rank != 0:
            self._reset()
            return
        stem = f"epoch_{trainer.current_epoch:04d}"
        self.output_dir.mkdir(parents=True, exist_ok=True)
        features = np.concatenate(self._features)
        projections = None
        if all(p is not None for p in self._projections):
            projections = np.concatenate(self._projections)
        obs = pd.concat(self._index, ignore_index=True)
        pca = self.pca_kwargs if len(features) >= 2 else None
        write_embedding_dataset(
            self.output_dir / f"{stem}.zarr",
            features,
            obs,
            projections=projections,
            pca_kwargs=pca,
            overwrite=True,
        )
        if self._images:
            np.save(self.output_dir / f"{stem}_images.npy", np.concatenate(self._images))
        self._reset()
