"""Cell index tables: one row per cell observation (and channel), pooled across experiments.

A cell index is a flat Parquet table with the columns of :data:`CELL_INDEX_SCHEMA` (the
0.1.0 contract): where a cell is (``experiment, store_path, tracks_path, fov, well, y, x,
z``), how it is grouped (``perturbation, channel_name, microscope``) and, where known, its
time-lapse, optical-pooled-screen, imaging and normalization columns. Parquet needs
``pyarrow`` (``pip install 'viscy-data[cellindex]'``); it is imported on first use.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viscy_data._imports import optional_import
from viscy_data._typing import CELL_INDEX_CORE_COLUMNS, CELL_INDEX_GROUPING_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CELL_INDEX_SCHEMA",  # noqa: F822 (built on first access, see __getattr__)
    "read_cell_index",
    "validate_cell_index",
    "write_cell_index",
]

#: Column name -> Arrow type name of the schema (every column nullable), in file order.
CELL_INDEX_COLUMN_TYPES: dict[str, str] = {
    "cell_id": "string",
    "experiment": "string",
    "store_path": "string",
    "tracks_path": "string",
    "fov": "string",
    "well": "string",
    "y": "float32",
    "x": "float32",
    "z": "int16",
    "perturbation": "string",
    "channel_name": "string",
    "t": "int32",
    "track_id": "int32",
    "global_track_id": "string",
    "lineage_id": "string",
    "parent_track_id": "int32",
    "hours_post_perturbation": "float32",
    "interval_minutes": "float32",
    "gene_name": "string",
    "reporter": "string",
    "sgRNA": "string",
    "microscope": "string",
    "marker": "string",
    "organelle": "string",
    "pixel_size_xy_um": "float32",
    "pixel_size_z_um": "float32",
    "T_shape": "int32",
    "C_shape": "int32",
    "Z_shape": "int32",
    "Y_shape": "int32",
    "X_shape": "int32",
    "z_focus_mean": "float32",
    "norm_mean": "float32",
    "norm_std": "float32",
    "norm_median": "float32",
    "norm_iqr": "float32",
    "norm_max": "float32",
    "norm_min": "float32",
}

#: Columns a cell index must have (the rest may be absent; they are written as nulls).
CELL_INDEX_REQUIRED_COLUMNS: list[str] = [*CELL_INDEX_CORE_COLUMNS, *CELL_INDEX_GROUPING_COLUMNS]

#: Low-cardinality string columns that :func:`read_cell_index` returns as categoricals.
_CATEGORICAL = (
    "experiment",
    "store_path",
    "channel_name",
    "reporter",
    "microscope",
    "marker",
    "organelle",
)


def _schema():
    pa = optional_import("pyarrow", "cellindex")
    return pa.schema(
        [(name, getattr(pa, kind)()) for name, kind in CELL_INDEX_COLUMN_TYPES.items()]
    )


def __getattr__(name: str) -> Any:
    # CELL_INDEX_SCHEMA is a pyarrow.Schema: built on first access so that importing this
    # module does not need pyarrow
    if name == "CELL_INDEX_SCHEMA":
        schema = _schema()
        globals()[name] = schema
        return schema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validate_cell_index(df: pd.DataFrame, *, strict: bool = False) -> list[str]:
    """Check a cell index against the schema: raise on errors, return warnings.

    Parameters
    ----------
    df : pd.DataFrame
        The table.
    strict : bool
        Require every schema column, not only :data:`CELL_INDEX_REQUIRED_COLUMNS`.

    Returns
    -------
    list[str]
        Warnings, in schema order: schema columns whose values are all null.

    Raises
    ------
    ValueError
        If required columns are missing (all of them named, sorted), or the pair
        ``(cell_id, channel_name)`` repeats.
    """
    required = list(CELL_INDEX_COLUMN_TYPES) if strict else CELL_INDEX_REQUIRED_COLUMNS
    missing = sorted(set(required) - set(df.columns))
    if missing:
        raise ValueError(f"Missing required columns: {missing}")
    n_dup = int(df.duplicated(subset=["cell_id", "channel_name"]).sum())
    if n_dup:
        raise ValueError(f"(cell_id, channel_name) must be unique, found {n_dup} duplicates")
    if len(df) == 0:
        return []
    return [
        f"column {name!r} is all null"
        for name in CELL_INDEX_COLUMN_TYPES
        if name in df.columns and df[name].isna().all()
    ]


def _conform(table):
    """``table`` with exactly the schema's columns, in order and of its types (nulls added)."""
    pa = optional_import("pyarrow", "cellindex")
    schema = _schema()
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(len(table), field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def read_cell_index(path: str | Path) -> pd.DataFrame:
    """Read a cell index Parquet file with the schema's columns and dtypes.

    Every schema column is returned (absent ones as nulls) and other columns are dropped.
    Floats are float32; integer columns keep their width, or become float64 where they hold
    nulls; ``experiment, store_path, channel_name, reporter, microscope, marker,
    organelle`` are categoricals.

    Parameters
    ----------
    path : str or Path
        A Parquet file.

    Returns
    -------
    pd.DataFrame

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    """
    pq = optional_import("pyarrow.parquet", "cellindex")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(str(path))
    df = _conform(pq.read_table(path)).to_pandas()
    for name in _CATEGORICAL:
        df[name] = df[name].astype("category")
    return df


def write_cell_index(df: pd.DataFrame, path: str | Path, *, validate: bool = True) -> None:
    """Write a cell index as Parquet with the schema, atomically (temporary file, rename).

    Schema columns the table lacks are written as nulls, other columns are dropped, and
    values are cast to the schema's types (a value that does not fit raises
    ``pyarrow.ArrowInvalid``). ``df`` itself is not changed.

    Parameters
    ----------
    df : pd.DataFrame
        The table.
    path : str | Path
        Destination Parquet file (parent folders are created).
    validate : bool
        Run :func:`validate_cell_index` (after adding the absent columns) and refuse to
        write a table it rejects.
    """
    pa = optional_import("pyarrow", "cellindex")
    pq = optional_import("pyarrow.parquet", "cellindex")
    path = Path(path)
    full = df.reset_index(drop=True)
    absent = [name for name in CELL_INDEX_COLUMN_TYPES if name not in full.columns]
    if absent:
        full = full.assign(**dict.fromkeys(absent))
    if validate:
        validate_cell_index(full)
    table = pa.Table.from_pandas(
        full[list(CELL_INDEX_COLUMN_TYPES)], schema=_schema(), preserve_index=False
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
