"""k-NN accuracy and temporal smoothness of validation embeddings during training."""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer

from viscy_utils.callbacks._collect import batch_column, batch_embeddings

_logger = logging.getLogger(__name__)


class OnlineEvalCallback(Callback):
    """Every ``every_n_epochs`` epochs, score the validation embeddings and log the scores.

    Logged (when the batches carry the needed columns, in ``batch["index"]`` or
    the batch itself): ``online_eval/knn_accuracy`` of ``label_key`` (needs
    scikit-learn, the ``[eval]`` extra) and ``online_eval/temporal_smoothness``
    (adjacent-frame over random-pair distance of ``track_id_key`` tracks at
    ``timepoint_key``).

    Parameters
    ----------
    every_n_epochs : int
    label_key : str
    k : int
        Neighbours of the k-NN classifier.
    track_id_key, timepoint_key : str
    knn_eval_mode : {"cv", "holdout"}
        See :func:`viscy_utils.evaluation.knn_accuracy`.
    holdout_test_size : float
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        label_key: str = "marker",
        k: int = 20,
        track_id_key: str = "global_track_id",
        timepoint_key: str = "t",
        knn_eval_mode: Literal["cv", "holdout"] = "cv",
        holdout_test_size: float = 0.2,
    ) -> None:
        super().__init__()
        self.every_n_epochs = every_n_epochs
        self.label_key = label_key
        self.k = k
        self.track_id_key = track_id_key
        self.timepoint_key = timepoint_key
        self.knn_eval_mode = knn_eval_mode
        self.holdout_test_size = holdout_test_size
        self._active = False
        self._rows: dict[str, list[np.ndarray]] = {}
        self.last_metrics: dict[str, float] = {}

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start collecting on evaluation epochs (never during the sanity check)."""
        self._active = (
            not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0
        )
        self._rows = {"features": [], "label": [], "track": [], "t": []}

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep this batch's features and label/track/time columns."""
        if not self._active:
            return
        features, _ = batch_embeddings(pl_module, batch, outputs)
        n = len(features)
        self._rows["features"].append(features)
        for name, key in (
            ("label", self.label_key),
            ("track", self.track_id_key),
            ("t", self.timepoint_key),
        ):
            self._rows[name].append(batch_column(batch, key, n))

    def _stack(self, name: str) -> np.ndarray | None:
        parts = self._rows.get(name, [])
        if not parts or any(p is None for p in parts):
            return None
        return np.concatenate(parts)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Compute and log the scores."""
        if not self._active or not self._rows["features"]:
            return
        from viscy_utils.evaluation import knn_accuracy, temporal_smoothness

        x = np.concatenate(self._rows["features"])
        labels, tracks, times = self._stack("label"), self._stack("track"), self._stack("t")
        metrics: dict[str, float] = {}
        if labels is not None and len(np.unique(labels)) >= 2:
            metrics["online_eval/knn_accuracy"] = knn_accuracy(
                x,
                labels,
                k=self.k,
                mode=self.knn_eval_mode,
                test_size=self.holdout_test_size,
            )
        if tracks is not None and times is not None:
            try:
                result = temporal_smoothness(x, tracks, times)
                metrics["online_eval/temporal_smoothness"] = result.ratio
            except ValueError as err:  # no adjacent pairs in this validation set
                _logger.info("OnlineEvalCallback: temporal smoothness skipped: %s", err)
        for name, value in metrics.items():
            pl_module.log(name, value, rank_zero_only=True)
        self.last_metrics = metrics
        self._rows = {"features": [], "label": [], "track": [], "t": []}
