"""Train/test splitting shared by the evaluation functions (group-aware when asked)."""

from __future__ import annotations

import numpy as np

from viscy_utils._imports import optional_import


def as_2d_float(embeddings, name: str = "embeddings") -> np.ndarray:
    """Return ``embeddings`` as a 2-D float array or raise naming the problem."""
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contain NaN or infinite values")
    return x


def check_length(n: int, values, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D array of length ``n`` or raise naming it."""
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"{name} must be 1-D with {n} entries (one per embedding), got {arr.shape}"
        )
    return arr


def train_test_indices(
    labels: np.ndarray,
    groups: np.ndarray | None,
    test_size: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into train and test.

    With ``groups`` every group lands wholly on one side (``GroupShuffleSplit``),
    so e.g. cells of one FOV never appear in both. Without groups the split is
    stratified by label when every class has at least two samples.
    """
    model_selection = optional_import("sklearn.model_selection")
    idx = np.arange(len(labels))
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ValueError(f"A group-aware split needs at least 2 groups, got {n_groups}")
        splitter = model_selection.GroupShuffleSplit(
            n_splits=1, test_size=test_size, random_state=seed
        )
        train, test = next(splitter.split(idx, labels, groups))
        return train, test
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 else None
    train, test = model_selection.train_test_split(
        idx, test_size=test_size, random_state=seed, stratify=stratify
    )
    return np.sort(train), np.sort(test)
