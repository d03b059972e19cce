"""Cell index tables: one row per cell observation, pooled across experiments.

A cell index is a flat table with the columns of :data:`CELL_INDEX_CORE_COLUMNS` (which
store, FOV and position a cell is at), optionally the grouping columns
(:data:`CELL_INDEX_GROUPING_COLUMNS`), the time-lapse columns
(:data:`CELL_INDEX_TIMELAPSE_COLUMNS`) and the optical-pooled-screen columns
(:data:`CELL_INDEX_OPS_COLUMNS`). It is stored as Parquet (needs ``pyarrow``) or CSV,
chosen by the file suffix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from viscy_data._imports import optional_import
from viscy_data._typing import (
    CELL_INDEX_CORE_COLUMNS,
    CELL_INDEX_GROUPING_COLUMNS,
    CELL_INDEX_TIMELAPSE_COLUMNS,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read_cell_index", "validate_cell_index", "write_cell_index"]

_NUMERIC = ("y", "x", "z")
_INTEGER_TIMELAPSE = ("t", "track_id", "parent_track_id")


def _format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise ValueError(f"cell index {path}: unknown format (use .parquet or .csv)")


def validate_cell_index(df: pd.DataFrame, *, strict: bool = False) -> list[str]:
    """List the problems of a cell index table (empty when it is valid).

    Parameters
    ----------
    df : pd.DataFrame
        The table.
    strict : bool
        Also require the grouping columns, and every time-lapse column once any is present.

    Returns
    -------
    list[str]
        One message per problem, naming the column.
    """
    import numpy as np
    import pandas as pd

    problems = []
    missing = [c for c in CELL_INDEX_CORE_COLUMNS if c not in df.columns]
    if missing:
        problems.append(f"missing core column(s) {missing}")
    if "cell_id" in df.columns and df["cell_id"].duplicated().any():
        dupes = df.loc[df["cell_id"].duplicated(), "cell_id"].unique()[:5].tolist()
        problems.append(f"column 'cell_id' has duplicate values, e.g. {dupes}")
    for col in CELL_INDEX_CORE_COLUMNS:
        if col in df.columns and df[col].isna().any():
            problems.append(f"column {col!r} has {int(df[col].isna().sum())} missing value(s)")
    for col in _NUMERIC:
        if col in df.columns:
            if not pd.api.types.is_numeric_dtype(df[col]):
                problems.append(f"column {col!r} must be numeric, got {df[col].dtype}")
            elif (df[col].to_numpy() < 0).any() or not np.isfinite(df[col].to_numpy()).all():
                problems.append(f"column {col!r} has negative or non-finite values")
    for col in _INTEGER_TIMELAPSE:
        if col in df.columns and not pd.api.types.is_integer_dtype(df[col]):
            problems.append(f"column {col!r} must be integer, got {df[col].dtype}")
    if strict:
        missing = [c for c in CELL_INDEX_GROUPING_COLUMNS if c not in df.columns]
        if missing:
            problems.append(f"missing grouping column(s) {missing}")
        present = [c for c in CELL_INDEX_TIMELAPSE_COLUMNS if c in df.columns]
        absent = [c for c in CELL_INDEX_TIMELAPSE_COLUMNS if c not in df.columns]
        if present and absent:
            problems.append(f"time-lapse columns {present} present but {absent} missing")
    return problems


def read_cell_index(path: str | Path) -> pd.DataFrame:
    """Read a cell index from Parquet or CSV.

    Parameters
    ----------
    path : str or Path
        A ``.parquet`` file (needs pyarrow) or a CSV file; the core columns are checked.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the table lacks core columns (the message names the file and columns).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cell index {path} does not exist")
    if _format(path) == "parquet":
        optional_import("pyarrow")
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path)
    missing = [c for c in CELL_INDEX_CORE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"cell index {path}: missing core column(s) {missing}")
    return df


def write_cell_index(df: pd.DataFrame, path: str | Path, *, validate: bool = True) -> None:
    """Write a cell index to Parquet or CSV, atomically (temporary file, then rename).

    Parameters
    ----------
    df : pd.DataFrame
        The table.
    path : str | Path
        Destination; ``.parquet`` (needs ``pyarrow``) or ``.csv`` / ``.csv.gz``.
    validate : bool
        Refuse to write a table with problems (see :func:`validate_cell_index`).
    """
    path = Path(path)
    fmt = _format(path)
    if validate:
        problems = validate_cell_index(df)
        if problems:
            raise ValueError(f"not writing invalid cell index {path}: " + "; ".join(problems))
    if fmt == "parquet":
        optional_import("pyarrow")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        else:
            compression = "gzip" if path.name.lower().endswith(".gz") else None
            df.to_csv(tmp, index=False, compression=compression)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
