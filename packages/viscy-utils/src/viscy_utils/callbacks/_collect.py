"""Gather embeddings (and batch columns) from validation batches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule

from viscy_utils.tensor_utils import to_numpy


def batch_embeddings(
    pl_module: LightningModule, batch: Any, outputs: Any, input_key: str = "anchor"
) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, projections) of one batch.

    Uses ``outputs`` when ``validation_step`` returned a dict with
    ``"features"``; otherwise runs ``pl_module(batch[input_key])`` without
    gradients (encoders return ``(features, projections)``).
    """
    if isinstance(outputs, Mapping) and "features" in outputs:
        feats, proj = outputs["features"], outputs.get("projections")
    else:
        if not isinstance(batch, Mapping) or input_key not in batch:
            raise KeyError(f"batch has no {input_key!r} to embed")
        with torch.no_grad():
            out = pl_module(batch[input_key])
        feats, proj = (out[0], out[1]) if isinstance(out, tuple | list) else (out, None)
    features = to_numpy(feats).reshape(len(feats), -1).astype(np.float32)
    projections = None if proj is None else to_numpy(proj).reshape(len(proj), -1)
    return features, projections


def batch_column(batch: Any, key: str, n: int) -> np.ndarray | None:
    """Column ``key`` of a batch, from ``batch["index"][key]`` or ``batch[key]``, else None."""
    if not isinstance(batch, Mapping):
        return None
    index = batch.get("index")
    value = None
    if isinstance(index, Mapping) and key in index:
        value = index[key]
    elif key in batch:
        value = batch[key]
    if value is None:
        return None
    arr = to_numpy(value) if isinstance(value, torch.Tensor) else np.asarray(value)
    return arr.reshape(-1) if arr.size == n else None
