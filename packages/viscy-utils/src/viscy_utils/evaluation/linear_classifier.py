"""Linear probe: how linearly separable are labels in an embedding space."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viscy_utils._imports import optional_import
from viscy_utils.evaluation._split import as_2d_float, check_length, train_test_indices


@dataclass
class LinearClassifierResult:
    """Scores of a linear classifier on held-out embeddings.

    Attributes
    ----------
    accuracy : float
        Fraction of test samples classified correctly.
    balanced_accuracy : float
        Mean per-class recall on the test set.
    f1_macro : float
        Macro-averaged F1 on the test set.
    chance_accuracy : float
        Accuracy of always predicting the most frequent training class.
    n_train, n_test : int
        Number of samples on each side of the split.
    classes : list
        Class labels, in the order of the confusion matrix rows/columns.
    confusion_matrix : np.ndarray
        ``(n_classes, n_classes)`` counts, rows true, columns predicted.
    train_indices, test_indices : np.ndarray
        Indices into the input arrays of each side of the split.
    pipeline : Any
        The fitted scikit-learn ``Pipeline`` (scaler, optional PCA, classifier);
        call ``pipeline.predict(new_embeddings)`` to classify more cells.
    """

    accuracy: float
    balanced_accuracy: float
    f1_macro: float
    chance_accuracy: float
    n_train: int
    n_test: int
    classes: list
    confusion_matrix: np.ndarray
    train_indices: np.ndarray = field(repr=False)
    test_indices: np.ndarray = field(repr=False)
    pipeline: Any = field(repr=False, default=None)

    def metrics(self) -> dict[str, float | int]:
        """Scalar metrics as a flat dict (e.g. for ``format_markdown_table``)."""
        return {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "f1_macro": self.f1_macro,
            "chance_accuracy": self.chance_accuracy,
            "n_train": self.n_train,
            "n_test": self.n_test,
        }


def build_linear_classifier(
    scale: bool = True,
    pca_components: int | float | None = None,
    C: float = 1.0,
    max_iter: int = 1000,
    class_weight: str | None = "balanced",
    seed: int = 0,
):
    """Build an unfitted scikit-learn pipeline: scaler -> optional PCA -> logistic regression.

    Parameters
    ----------
    scale : bool
        Standardize features (zero mean, unit variance) first.
    pca_components : int or float, optional
        Keep this many principal components (or this fraction of variance if
        a float in (0, 1)); None skips PCA.
    C : float
        Inverse L2 regularization strength.
    max_iter : int
        Solver iterations.
    class_weight : str, optional
        ``"balanced"`` weights classes inversely to their frequency.
    seed : int
        Random state of PCA and the solver.

    Returns
    -------
    sklearn.pipeline.Pipeline
    """
    pipeline = optional_import("sklearn.pipeline")
    preprocessing = optional_import("sklearn.preprocessing")
    decomposition = optional_import("sklearn.decomposition")
    linear_model = optional_import("sklearn.linear_model")
    steps = []
    if scale:
        steps.append(("scale", preprocessing.StandardScaler()))
    if pca_components is not None:
        steps.append(("pca", decomposition.PCA(n_components=pca_components, random_state=seed)))
    steps.append(
        (
            "classifier",
            linear_model.LogisticRegression(
                C=C, max_iter=max_iter, class_weight=class_weight, random_state=seed
            ),
        )
    )
    return pipeline.Pipeline(steps)


def train_linear_classifier(
    embeddings,
    labels,
    groups=None,
    test_size: float = 0.2,
    scale: bool = True,
    pca_components: int | float | None = None,
    C: float = 1.0,
    max_iter: int = 1000,
    class_weight: str | None = "balanced",
    seed: int = 0,
) -> LinearClassifierResult:
    """Fit a logistic-regression probe on embeddings and score it on a held-out split.

    Parameters
    ----------
    embeddings : array-like, shape (n_samples, n_features)
        One embedding per cell (e.g. ``adata.X``).
    labels : array-like, shape (n_samples,)
        Class of each cell (strings or integers). Samples with a missing label
        (None/NaN) are dropped.
    groups : array-like, shape (n_samples,), optional
        Group of each cell (e.g. FOV name or experiment): a group is never split
        between train and test, so the score is not inflated by near-duplicates.
    test_size : float
        Fraction of samples (or of groups when ``groups`` is given) held out.
    scale, pca_components, C, max_iter, class_weight, seed
        See :func:`build_linear_classifier`.

    Returns
    -------
    LinearClassifierResult
        Test accuracy, balanced accuracy, macro F1, confusion matrix and the
        fitted pipeline.

    Raises
    ------
    ValueError
        If shapes disagree, fewer than two classes remain, or the training split
        holds a single class.
    """
    metrics = optional_import("sklearn.metrics")
    x = as_2d_float(embeddings)
    y = check_length(len(x), labels, "labels")
    g = None if groups is None else check_length(len(x), groups, "groups")
    keep = ~_is_missing(y)
    x, y = x[keep], y[keep]
    g = None if g is None else g[keep]
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"A linear classifier needs at least 2 classes, got {classes.tolist()}")
    train, test = train_test_indices(y, g, test_size, seed)
    if len(np.unique(y[train])) < 2:
        raise ValueError(
            "The training split holds a single class; use more groups or a different test_size"
        )
    model = build_linear_classifier(scale, pca_components, C, max_iter, class_weight, seed)
    model.fit(x[train], y[train])
    pred = model.predict(x[test])
    values, counts = np.unique(y[train], return_counts=True)
    majority = values[np.argmax(counts)]
    kept_idx = np.flatnonzero(keep)
    return LinearClassifierResult(
        accuracy=float(metrics.accuracy_score(y[test], pred)),
        balanced_accuracy=float(metrics.balanced_accuracy_score(y[test], pred)),
        f1_macro=float(metrics.f1_score(y[test], pred, average="macro", zero_division=0)),
        chance_accuracy=float(np.mean(y[test] == majority)),
        n_train=len(train),
        n_test=len(test),
        classes=classes.tolist(),
        confusion_matrix=metrics.confusion_matrix(y[test], pred, labels=classes),
        train_indices=kept_idx[train],
        test_indices=kept_idx[test],
        pipeline=model,
    )


def _is_missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values])
    return np.zeros(len(values), dtype=bool)
