"""``dynaclr append-predictions``: add a classifier's output CSV to an embedding zarr's ``obs``.

The CSV is what ``dynaclr apply-linear-classifier`` writes (the cells' index plus
``predicted_<label>`` and ``probability_<class>`` columns), or any table with the same
join keys. Rows are matched as in ``dynaclr annotate``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dynaclr.evaluation._io import read_embeddings, write_embeddings
from dynaclr.evaluation.annotate import AnnotationReport, merge_annotations

__all__ = ["PREDICTION_PREFIXES", "append_predictions", "main"]

#: Column prefixes taken from a predictions CSV by default.
PREDICTION_PREFIXES = ("predicted_", "probability_")


def append_predictions(
    embeddings_path: str | Path,
    predictions_path: str | Path,
    columns: Sequence[str] | None = None,
    prefix: str = "",
    output_path: str | Path | None = None,
) -> AnnotationReport:
    """Merge prediction columns into ``obs`` (renamed ``<prefix><column>``) and write the store.

    Parameters
    ----------
    embeddings_path : path
        AnnData zarr store (rewritten in place unless ``output_path``).
    predictions_path : path
        CSV with the join keys and prediction columns.
    columns : sequence of str, optional
        Columns to take (default: those starting with ``predicted_`` or ``probability_``).
    prefix : str
        Prepended to each taken column, e.g. ``"model_b_"`` to keep two classifiers apart.
    output_path : path, optional
    """
    predictions_path = Path(predictions_path)
    if not predictions_path.exists():
        raise FileNotFoundError(f"Predictions not found: {predictions_path}")
    table = pd.read_csv(predictions_path)
    if columns is None:
        columns = [c for c in table.columns if c.startswith(PREDICTION_PREFIXES)]
        if not columns:
            raise KeyError(
                f"{predictions_path} has no column starting with {PREDICTION_PREFIXES}; "
                f"pass --column (columns: {list(table.columns)})"
            )
    renamed = {c: f"{prefix}{c}" for c in columns}
    table = table.rename(columns=renamed)
    adata = read_embeddings(embeddings_path)
    obs, report = merge_annotations(
        adata.obs, table, list(renamed.values()), source=str(predictions_path)
    )
    adata.obs = obs
    write_embeddings(adata, output_path or embeddings_path)
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dynaclr append-predictions``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr append-predictions",
        description="Add classifier predictions (CSV from apply-linear-classifier) to the obs "
        "of an embedding zarr.",
    )
    parser.add_argument("embeddings", help="AnnData zarr store")
    parser.add_argument("predictions", help="CSV with fov_name, track_id, t (or id) + predictions")
    parser.add_argument("--column", action="append", help="column to take (repeat)")
    parser.add_argument("--prefix", default="", help="prefix for the new obs columns")
    parser.add_argument("--out", help="write to this store instead of updating in place")
    args = parser.parse_args(argv)
    report = append_predictions(
        args.embeddings, args.predictions, args.column, args.prefix, args.out
    )
    print(report.summary())
    return 0
