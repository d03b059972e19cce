"""``dynaclr annotate``: merge an annotation CSV into the ``obs`` of an embedding zarr.

Rows are matched on ``(fov_name, track_id, t)``, else ``(fov_name, id, t)``, else
``(fov_name, id)`` (whichever both tables have first). FOV names match with or without a
leading slash. Both directions of mismatch are reported: annotation rows that name no
embedded cell, and cells that got no annotation.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dynaclr.evaluation._io import clean_fov, read_embeddings, write_embeddings

__all__ = ["JOIN_KEYS", "AnnotationReport", "annotate_embeddings", "main", "merge_annotations"]

#: Join keys tried in order.
JOIN_KEYS = (("fov_name", "track_id", "t"), ("fov_name", "id", "t"), ("fov_name", "id"))


@dataclass(frozen=True)
class AnnotationReport:
    """How an annotation table matched the embedded cells."""

    keys: tuple[str, ...]
    columns: tuple[str, ...]
    n_cells: int
    n_annotations: int
    n_matched_cells: int
    n_unmatched_annotations: int
    unmatched_examples: tuple[dict, ...]

    def summary(self) -> str:
        """Two lines for the terminal."""
        lines = [
            f"matched {self.n_matched_cells}/{self.n_cells} cells on {list(self.keys)}; "
            f"columns {list(self.columns)}",
        ]
        if self.n_unmatched_annotations:
            lines.append(
                f"{self.n_unmatched_annotations}/{self.n_annotations} annotation rows match no "
                f"embedded cell, e.g. {list(self.unmatched_examples)}"
            )
        return "\n".join(lines)


def _normalize_keys(df: pd.DataFrame, keys: Sequence[str], where: str) -> pd.DataFrame:
    df = df.copy()
    df["fov_name"] = clean_fov(df["fov_name"]).to_numpy()
    for key in keys[1:]:
        values = pd.to_numeric(df[key], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise ValueError(f"{where}: column {key!r} holds a non-integer at row {row}")
        df[key] = values.astype(np.int64)
    return df


def merge_annotations(
    obs: pd.DataFrame,
    table: pd.DataFrame,
    columns: Sequence[str] | None = None,
    source: str = "annotations",
) -> tuple[pd.DataFrame, AnnotationReport]:
    """Left-join ``columns`` of ``table`` onto ``obs``; existing columns of that name are replaced.

    Parameters
    ----------
    obs : pandas.DataFrame
        The cells (rows kept in order).
    table : pandas.DataFrame
        Annotations with the join keys and the label columns.
    columns : sequence of str, optional
        Columns to copy (default: every column that is not a join key or a coordinate).
    source : str
        Name of the table in messages (its path).

    Returns
    -------
    tuple
        The new ``obs`` (same index) and an :class:`AnnotationReport`.
    """
    for keys in JOIN_KEYS:
        if all(k in obs.columns and k in table.columns for k in keys):
            break
    else:
        raise KeyError(
            f"Cannot join {source} to the embeddings: need columns "
            f"{' or '.join(str(list(k)) for k in JOIN_KEYS)} in both "
            f"({source} has {list(table.columns)}; obs has {list(obs.columns)})"
        )
    if columns is None:
        skip = {*keys, "track_id", "id", "t", "z", "y", "x", "parent_track_id", "parent_id"}
        columns = [c for c in table.columns if c not in skip]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise KeyError(f"{source} lacks column(s) {missing} (columns: {list(table.columns)})")
    if not columns:
        raise ValueError(f"{source} has no label columns besides the join keys {list(keys)}")
    right = _normalize_keys(table[[*keys, *columns]], keys, source)
    dup = right.duplicated(list(keys))
    if dup.any():
        first = right.loc[dup, list(keys)].iloc[0].to_dict()
        raise ValueError(f"{source} has {int(dup.sum())} duplicate rows for {keys}, e.g. {first}")
    left = _normalize_keys(obs[list(keys)], keys, "obs")
    merged = left.merge(right, on=list(keys), how="left", indicator=True, validate="many_to_one")
    out = obs.drop(columns=[c for c in columns if c in obs.columns])
    for column in columns:
        out[column] = merged[column].to_numpy()
    matched_cells = int((merged["_merge"] == "both").sum())
    hits = right.merge(left.drop_duplicates(), on=list(keys), how="left", indicator=True)
    unmatched = hits[hits["_merge"] == "left_only"]
    report = AnnotationReport(
        keys=tuple(keys),
        columns=tuple(columns),
        n_cells=len(obs),
        n_annotations=len(right),
        n_matched_cells=matched_cells,
        n_unmatched_annotations=len(unmatched),
        unmatched_examples=tuple(
            {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in unmatched[list(keys)].head(3).to_dict("records")
        ),
    )
    return out, report


def annotate_embeddings(
    embeddings_path: str | Path,
    annotations_path: str | Path,
    columns: Sequence[str] | None = None,
    output_path: str | Path | None = None,
) -> AnnotationReport:
    """Merge an annotation CSV into a store's ``obs`` and write it (in place by default)."""
    adata = read_embeddings(embeddings_path)
    annotations_path = Path(annotations_path)
    if not annotations_path.exists():
        raise FileNotFoundError(f"Annotations not found: {annotations_path}")
    table = pd.read_csv(annotations_path)
    obs, report = merge_annotations(adata.obs, table, columns, source=str(annotations_path))
    adata.obs = obs
    write_embeddings(adata, output_path or embeddings_path)
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dynaclr annotate``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr annotate",
        description="Merge annotation columns from a CSV (fov_name, track_id, t or id -> "
        "labels) into the obs of an embedding zarr; reports unmatched rows.",
    )
    parser.add_argument("embeddings", help="AnnData zarr store")
    parser.add_argument("annotations", help="CSV with fov_name, track_id, t (or id) and labels")
    parser.add_argument(
        "--column", action="append", help="label column to copy (repeat; default: all)"
    )
    parser.add_argument("--out", help="write to this store instead of updating in place")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if any annotation row matches no cell"
    )
    args = parser.parse_args(argv)
    report = annotate_embeddings(args.embeddings, args.annotations, args.column, args.out)
    print(report.summary())
    return 1 if args.strict and report.n_unmatched_annotations else 0
