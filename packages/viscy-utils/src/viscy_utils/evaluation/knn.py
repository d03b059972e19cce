"""k-nearest-neighbour accuracy of labels in an embedding space."""

from __future__ import annotations

from typing import Literal

import numpy as np

from viscy_utils._imports import optional_import
from viscy_utils.evaluation._split import as_2d_float, check_length, train_test_indices


def knn_accuracy(
    embeddings,
    labels,
    k: int = 20,
    groups=None,
    mode: Literal["cv", "holdout"] = "cv",
    n_splits: int = 5,
    test_size: float = 0.2,
    metric: str = "cosine",
    seed: int = 0,
) -> float:
    """Accuracy of a k-NN classifier predicting labels from embeddings.

    Parameters
    ----------
    embeddings : array-like, shape (n_samples, n_features)
    labels : array-like, shape (n_samples,)
    k : int
        Neighbours voting (capped at the training-set size).
    groups : array-like, optional
        Group of each sample (e.g. FOV or track); a group is never split between
        train and test folds.
    mode : {"cv", "holdout"}
        ``"cv"``: mean accuracy over ``n_splits`` (group) k-fold splits;
        ``"holdout"``: one split holding out ``test_size``.
    n_splits : int
        Folds in ``"cv"`` mode (capped at the number of groups / smallest class).
    test_size : float
        Held-out fraction in ``"holdout"`` mode.
    metric : str
        Distance used by ``KNeighborsClassifier`` (``"cosine"``, ``"euclidean"``...).
    seed : int
        Seed of the fold shuffling.

    Returns
    -------
    float
        Accuracy in [0, 1].
    """
    neighbors = optional_import("sklearn.neighbors")
    model_selection = optional_import("sklearn.model_selection")
    x = as_2d_float(embeddings)
    y = check_length(len(x), labels, "labels")
    g = None if groups is None else check_length(len(x), groups, "groups")
    if len(np.unique(y)) < 2:
        raise ValueError("k-NN accuracy needs at least 2 classes")

    def score(train: np.ndarray, test: np.ndarray) -> float:
        clf = neighbors.KNeighborsClassifier(n_neighbors=min(k, len(train)), metric=metric)
        clf.fit(x[train], y[train])
        return float(np.mean(clf.predict(x[test]) == y[test]))

    if mode == "holdout":
        return score(*train_test_indices(y, g, test_size, seed))
    if mode != "cv":
        raise ValueError(f"mode must be 'cv' or 'holdout', got {mode!r}")
    if g is not None:
        n = min(n_splits, len(np.unique(g)))
        if n < 2:
            raise ValueError("Group-aware cross-validation needs at least 2 groups")
        splits = model_selection.GroupKFold(n_splits=n).split(x, y, g)
    else:
        n = min(n_splits, int(np.unique(y, return_counts=True)[1].min()))
        if n >= 2:
            splits = model_selection.StratifiedKFold(n, shuffle=True, random_state=seed).split(x, y)
        else:
            splits = model_selection.KFold(
                max(2, min(n_splits, len(y))), shuffle=True, random_state=seed
            ).split(x)
    return float(np.mean([score(tr, te) for tr, te in splits]))
