"""Linear probes on predicted embeddings: ``dynaclr train-linear-classifier`` and
``dynaclr apply-linear-classifier``.

Embeddings are the AnnData zarr stores written by
``viscy_utils.callbacks.EmbeddingWriter`` (``X`` = one embedding per cell, ``obs`` =
the tracking index: ``fov_name, track_id, t, id, ...``). Labels come from a column of
``obs`` or from an annotation CSV joined on the tracking index.
"""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "apply_linear_classifier",
    "load_embeddings_with_labels",
    "train_linear_classifier_on_embeddings",
]


def _read_anndata(path: str | Path):
    try:
        import anndata
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Reading embeddings needs anndata: pip install 'viscy-utils[anndata]'"
        ) from err
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Embeddings not found: {path}")
    return anndata.read_zarr(path)


def _clean_fov(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip("/")


def load_embeddings_with_labels(
    embeddings_path: str | Path,
    label_column: str,
    annotations_path: str | Path | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Read embeddings and attach a label column.

    Parameters
    ----------
    embeddings_path : str | Path
        AnnData zarr store of embeddings.
    label_column : str
        Column with the class of each cell, in ``obs`` or in the annotations.
    annotations_path : str | Path, optional
        CSV joined to ``obs`` on ``(fov_name, track_id, t)`` (or ``(fov_name, id, t)``).

    Returns
    -------
    tuple[np.ndarray, pd.DataFrame]
        ``X`` (n_cells, n_features) and ``obs`` with ``label_column`` (NaN where a
        cell has no annotation).
    """
    adata = _read_anndata(embeddings_path)
    x = np.asarray(adata.X, dtype=np.float32)
    obs = adata.obs.reset_index(drop=True).copy()
    if annotations_path is None:
        if label_column not in obs.columns:
            raise KeyError(
                f"Column {label_column!r} is not in the obs of {embeddings_path} "
                f"(columns: {list(obs.columns)}); pass --annotations CSV."
            )
        return x, obs
    from dynaclr.evaluation.annotate import merge_annotations

    annotations = pd.read_csv(annotations_path)
    if label_column not in annotations.columns:
        raise KeyError(
            f"Column {label_column!r} is not in {annotations_path} "
            f"(columns: {list(annotations.columns)})"
        )
    merged, _ = merge_annotations(
        obs, annotations.drop_duplicates(), [label_column], source=str(annotations_path)
    )
    merged["fov_name"] = _clean_fov(merged["fov_name"])
    return x, merged


def train_linear_classifier_on_embeddings(
    embeddings_path: str | Path,
    label_column: str,
    annotations_path: str | Path | None = None,
    group_column: str | None = "fov_name",
    test_size: float = 0.2,
    seed: int = 0,
):
    """Fit a logistic-regression probe and score it on held-out groups (FOVs).

    Returns
    -------
    viscy_utils.evaluation.LinearClassifierResult
    """
    from viscy_utils.evaluation import train_linear_classifier

    x, obs = load_embeddings_with_labels(embeddings_path, label_column, annotations_path)
    groups = None if group_column is None else obs[group_column].to_numpy()
    labels = obs[label_column].to_numpy()
    return train_linear_classifier(x, labels, groups=groups, test_size=test_size, seed=seed)


def apply_linear_classifier(
    embeddings_path: str | Path, model_path: str | Path, output_path: str | Path
) -> pd.DataFrame:
    """Predict a label for every embedding and write ``obs`` plus predictions as CSV."""
    with open(model_path, "rb") as f:
        saved = pickle.load(f)
    pipeline, label_column = saved["pipeline"], saved["label_column"]
    adata = _read_anndata(embeddings_path)
    x = np.asarray(adata.X, dtype=np.float32)
    obs = adata.obs.reset_index(drop=True).copy()
    obs[f"predicted_{label_column}"] = pipeline.predict(x)
    if hasattr(pipeline, "predict_proba"):
        proba = pipeline.predict_proba(x)
        for i, cls in enumerate(pipeline.classes_):
            obs[f"probability_{cls}"] = proba[:, i]
    _atomic_write_csv(obs, Path(output_path))
    return obs


def _atomic_write_csv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _atomic_write_pickle(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f)
    os.replace(tmp, path)


def train_main(argv: list[str] | None = None) -> int:
    """``dynaclr train-linear-classifier``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr train-linear-classifier",
        description="Fit a linear probe (logistic regression) on embeddings.",
    )
    parser.add_argument("--embeddings", required=True, help="AnnData zarr of embeddings")
    parser.add_argument("--label-column", required=True, help="column holding the class")
    parser.add_argument("--annotations", help="CSV with the label column (else obs is used)")
    parser.add_argument("--group-column", default="fov_name", help="never split a group")
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="where to save the fitted probe (.pkl)")
    args = parser.parse_args(argv)
    result = train_linear_classifier_on_embeddings(
        args.embeddings,
        args.label_column,
        args.annotations,
        group_column=args.group_column or None,
        test_size=args.test_size,
        seed=args.seed,
    )
    out = Path(args.out)
    if out.exists():
        parser.error(f"{out} exists; choose another --out")
    _atomic_write_pickle(
        {"pipeline": result.pipeline, "label_column": args.label_column, "classes": result.classes},
        out,
    )
    for key, value in result.metrics().items():
        print(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")
    print(f"saved linear classifier to {out}")
    return 0


def apply_main(argv: list[str] | None = None) -> int:
    """``dynaclr apply-linear-classifier``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr apply-linear-classifier",
        description="Label embeddings with a probe saved by train-linear-classifier.",
    )
    parser.add_argument("--embeddings", required=True, help="AnnData zarr of embeddings")
    parser.add_argument("--model", required=True, help=".pkl from train-linear-classifier")
    parser.add_argument("--out", required=True, help="CSV of obs + predicted labels")
    args = parser.parse_args(argv)
    obs = apply_linear_classifier(args.embeddings, args.model, args.out)
    print(f"wrote {len(obs)} predictions to {args.out}")
    return 0
