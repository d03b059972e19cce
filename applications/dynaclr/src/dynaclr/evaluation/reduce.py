"""``dynaclr reduce``: PCA, UMAP and PHATE of embeddings into ``obsm``.

Several stores are reduced jointly (one fit over all their cells), so their coordinates
share one space; each store gets its own rows back. PCA needs scikit-learn (a dynaclr
dependency), UMAP ``umap-learn`` and PHATE ``phate``: a missing one raises an ImportError
naming the extra that installs it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dynaclr.evaluation._io import read_embeddings, write_embeddings

__all__ = ["METHODS", "main", "reduce_embeddings"]

#: Methods and the ``obsm`` key each one writes.
METHODS = {"pca": "X_pca", "umap": "X_umap", "phate": "X_phate"}

_EXTRAS = {"umap": ("umap", "umap-learn", "eval"), "phate": ("phate", "phate", "phate")}


def _require(method: str):
    import importlib

    module, dist, extra = _EXTRAS[method]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"dynaclr reduce --method {method} needs {dist}: pip install 'dynaclr[{extra}]'"
        ) from err


def _source(adata, use: str, path: Path) -> np.ndarray:
    if use == "X":
        return np.asarray(adata.X, dtype=np.float32)
    if use not in adata.obsm:
        raise KeyError(f"{path} has no obsm[{use!r}] (obsm keys: {list(adata.obsm.keys())})")
    return np.asarray(adata.obsm[use], dtype=np.float32)


def _fit(method: str, x: np.ndarray, n_components: int, seed: int) -> tuple[np.ndarray, dict]:
    if method == "pca":
        from viscy_utils.evaluation import compute_pca

        coords, ratio = compute_pca(x, n_components=n_components, seed=seed)
        return coords, {"variance_ratio": ratio}
    if method == "umap":
        _require("umap")
        from viscy_utils.evaluation import compute_umap

        return compute_umap(x, n_components=n_components, seed=seed), {}
    if method == "phate":
        phate = _require("phate")
        std = x.std(axis=0)
        scaled = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
        reducer = phate.PHATE(
            n_components=n_components, knn=min(5, len(x) - 1), random_state=seed, verbose=0
        )
        return np.asarray(reducer.fit_transform(scaled), dtype=np.float32), {}
    raise ValueError(f"Unknown method {method!r}; choose from {sorted(METHODS)}")


def reduce_embeddings(
    paths: Sequence[str | Path],
    methods: Sequence[str] = ("pca",),
    n_components: int = 2,
    use: str = "X",
    seed: int = 0,
) -> dict[str, list[Path]]:
    """Fit each method once on the cells of every store, write ``obsm[X_<method>]`` back.

    Parameters
    ----------
    paths : sequence of path
        AnnData zarr stores (rewritten in place, atomically; other keys are kept).
    methods : sequence of {"pca", "umap", "phate"}
    n_components : int
        Output dimensions.
    use : str
        ``"X"`` (features) or an ``obsm`` key such as ``"X_projections"``.
    seed : int
        Random state of each method.

    Returns
    -------
    dict
        Method -> the stores it was written to.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    for method in methods:  # fail before any work when an extra is missing
        if method in _EXTRAS:
            _require(method)
    paths = [Path(p) for p in paths]
    stores = [read_embeddings(p) for p in paths]
    sources = [_source(a, use, p) for a, p in zip(stores, paths, strict=True)]
    widths = {s.shape[1] for s in sources}
    if len(widths) > 1:
        raise ValueError(
            "Joint reduction needs embeddings of one width; got "
            + ", ".join(f"{p}: {s.shape[1]}" for p, s in zip(paths, sources, strict=True))
        )
    x = np.concatenate(sources)
    bounds = np.cumsum([0, *(len(s) for s in sources)])
    for method in methods:
        coords, info = _fit(method, x, n_components, seed)
        for i, adata in enumerate(stores):
            adata.obsm[METHODS[method]] = coords[bounds[i] : bounds[i + 1]]
            adata.uns[method] = {
                **info,
                "use": use,
                "n_components": n_components,
                "seed": seed,
                "joint_with": [str(p) for p in paths],
            }
    for adata, path in zip(stores, paths, strict=True):
        write_embeddings(adata, path)
    return {m: paths for m in methods}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dynaclr reduce``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr reduce",
        description="Add PCA / UMAP / PHATE coordinates (obsm['X_pca'], ...) to embedding "
        "zarrs; several zarrs are reduced jointly into one shared space.",
    )
    parser.add_argument("embeddings", nargs="+", help="AnnData zarr store(s), rewritten in place")
    parser.add_argument(
        "--method",
        action="append",
        choices=sorted(METHODS),
        help="repeat for several (default: pca)",
    )
    parser.add_argument("--n-components", type=int, default=2)
    parser.add_argument("--use", default="X", help="X (features) or an obsm key")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    methods = args.method or ["pca"]
    reduce_embeddings(args.embeddings, methods, args.n_components, args.use, args.seed)
    for method in methods:
        print(f"wrote obsm[{METHODS[method]!r}] to {len(args.embeddings)} store(s)")
    return 0
