"""PCA and UMAP of embeddings, with an optional scatter plot saved as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from viscy_utils._imports import optional_import
from viscy_utils.evaluation._split import as_2d_float, check_length


def compute_pca(
    embeddings,
    n_components: int = 2,
    scale: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Project embeddings onto their principal components.

    Parameters
    ----------
    embeddings : array-like, shape (n_samples, n_features)
    n_components : int
        Components kept (capped at ``min(n_samples, n_features)``).
    scale : bool
        Standardize features before PCA.
    seed : int
        Random state of the solver.

    Returns
    -------
    coords : np.ndarray, shape (n_samples, n_components)
    explained_variance_ratio : np.ndarray, shape (n_components,)
    """
    decomposition = optional_import("sklearn.decomposition")
    x = as_2d_float(embeddings)
    if scale:
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    n = min(n_components, *x.shape)
    pca = decomposition.PCA(n_components=n, random_state=seed)
    coords = pca.fit_transform(x)
    return coords.astype(np.float32), pca.explained_variance_ratio_.astype(np.float32)


def compute_umap(
    embeddings,
    n_components: int = 2,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    scale: bool = True,
    seed: int | None = 0,
) -> np.ndarray:
    """UMAP coordinates of embeddings (needs ``umap-learn``, the ``[eval]`` extra).

    Parameters
    ----------
    embeddings : array-like, shape (n_samples, n_features)
    n_components, n_neighbors, min_dist, metric
        Passed to ``umap.UMAP`` (``n_neighbors`` capped at ``n_samples - 1``).
    scale : bool
        Standardize features first.
    seed : int, optional
        Random state (None lets UMAP run in parallel, non-deterministically).

    Returns
    -------
    np.ndarray, shape (n_samples, n_components)
    """
    umap = optional_import("umap")
    x = as_2d_float(embeddings)
    if len(x) < 3:
        raise ValueError("UMAP needs at least 3 samples")
    if scale:
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    reducer = umap.UMAP(
        n_components=n_components,
        n_neighbors=min(n_neighbors, len(x) - 1),
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
    )
    return reducer.fit_transform(x).astype(np.float32)


def plot_embedding(
    coords,
    labels=None,
    output_path: str | Path | None = None,
    title: str | None = None,
    axis_prefix: str = "dim",
    point_size: float = 4.0,
):
    """Scatter plot of 2-D coordinates, coloured by label, optionally saved as PNG.

    Parameters
    ----------
    coords : array-like, shape (n_samples, >=2)
        E.g. the output of :func:`compute_pca` or :func:`compute_umap`; the first
        two columns are plotted.
    labels : array-like, optional
        Category of each point (one colour and legend entry per category).
    output_path : str or Path, optional
        Where to write the PNG (parent folders created); None only returns the figure.
    title : str, optional
    axis_prefix : str
        Axis labels are ``f"{axis_prefix}1"`` and ``f"{axis_prefix}2"``.
    point_size : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    matplotlib = optional_import("matplotlib")
    if output_path is not None:
        matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    xy = np.asarray(coords)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"coords must be (n_samples, >=2), got shape {xy.shape}")
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=point_size)
    else:
        lab = check_length(len(xy), labels, "labels")
        for value in sorted(set(lab.tolist()), key=str):
            sel = lab == value
            ax.scatter(xy[sel, 0], xy[sel, 1], s=point_size, label=str(value))
        ax.legend(markerscale=2, fontsize="small")
    ax.set_xlabel(f"{axis_prefix}1")
    ax.set_ylabel(f"{axis_prefix}2")
    if title:
        ax.set_title(title)
    if output_path is not None:
        output_path = Path(output_path)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(output_path, format="png", bbox_inches="tight")
    return fig
