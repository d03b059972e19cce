"""Cell index read / validate / write: the 0.1.0 Parquet contract (schema, errors, dtypes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from viscy_data._typing import CELL_INDEX_CORE_COLUMNS, CELL_INDEX_GROUPING_COLUMNS
from viscy_data.cell_index import (
    CELL_INDEX_COLUMN_TYPES,
    read_cell_index,
    validate_cell_index,
    write_cell_index,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _table(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cell_id": [f"e/A/1/0/{i}" for i in range(n)],
            "experiment": "e",
            "store_path": "/data/e.zarr",
            "tracks_path": "/data/e_tracks",
            "fov": "A/1/0",
            "well": "A/1",
            "y": np.linspace(1, 60, n),
            "x": np.linspace(2, 50, n),
            "z": 0,
            "perturbation": "mock",
            "channel_name": "Phase3D",
            "microscope": "scope",
            "t": np.arange(n),
        }
    )


def test_schema_is_the_column_contract():
    from viscy_data.cell_index import CELL_INDEX_SCHEMA

    assert isinstance(CELL_INDEX_SCHEMA, pa.Schema)
    assert CELL_INDEX_SCHEMA.names == list(CELL_INDEX_COLUMN_TYPES)
    assert CELL_INDEX_SCHEMA.names[:9] == CELL_INDEX_CORE_COLUMNS
    assert CELL_INDEX_SCHEMA.field("z").type == pa.int16()
    assert CELL_INDEX_SCHEMA.field("y").type == pa.float32()
    assert all(field.nullable for field in CELL_INDEX_SCHEMA)


@pytest.mark.parametrize("column", CELL_INDEX_CORE_COLUMNS + CELL_INDEX_GROUPING_COLUMNS)
def test_every_required_column_is_named_when_missing(column):
    with pytest.raises(ValueError, match=rf"Missing required columns: \['{column}'\]"):
        validate_cell_index(_table().drop(columns=[column]))


def test_strict_requires_every_schema_column_sorted():
    with pytest.raises(ValueError) as info:
        validate_cell_index(_table(), strict=True)
    named = info.value.args[0].removeprefix("Missing required columns: ")
    missing = sorted(set(CELL_INDEX_COLUMN_TYPES) - set(_table().columns))
    assert named == str(missing)
    full = _table().assign(**{c: 1 for c in missing})
    assert validate_cell_index(full, strict=True) == []


def test_cell_id_channel_pairs_are_unique():
    df = _table(4)
    df.loc[[1, 2], "cell_id"] = df.loc[0, "cell_id"]
    with pytest.raises(ValueError, match="found 2 duplicates"):
        validate_cell_index(df)
    df.loc[[1, 2], "channel_name"] = ["GFP", "RFP"]  # one cell in three channels
    assert validate_cell_index(df) == []


def test_all_null_schema_columns_are_warnings_in_schema_order():
    df = _table().assign(gene_name=None, tracks_path=None, not_in_schema=None)
    df["t"] = np.nan
    assert validate_cell_index(df) == [
        "column 'tracks_path' is all null",
        "column 't' is all null",
        "column 'gene_name' is all null",
    ]
    assert validate_cell_index(df.iloc[:0]) == []


def test_write_fills_absent_columns_drops_others_and_keeps_input(tmp_path):
    df = _table().assign(unrelated=1)
    before = list(df.columns)
    write_cell_index(df, tmp_path / "idx.parquet")
    assert list(df.columns) == before
    schema = pq.read_schema(tmp_path / "idx.parquet")
    assert schema.names == list(CELL_INDEX_COLUMN_TYPES)
    back = read_cell_index(tmp_path / "idx.parquet")
    assert list(back.columns) == list(CELL_INDEX_COLUMN_TYPES)
    assert back["z"].dtype == np.int16 and back["y"].dtype == np.float32
    assert back["t"].dtype == np.int32  # no nulls: the schema's width
    assert back["track_id"].dtype == np.float64 and back["track_id"].isna().all()
    assert isinstance(back["experiment"].dtype, pd.CategoricalDtype)
    assert isinstance(back["channel_name"].dtype, pd.CategoricalDtype)
    np.testing.assert_allclose(back["x"], df["x"].astype(np.float32))
    assert back["cell_id"].tolist() == df["cell_id"].tolist()


def test_write_validates_after_filling_and_refuses_duplicates(tmp_path):
    write_cell_index(_table().drop(columns=["fov"]), tmp_path / "a.parquet")
    assert read_cell_index(tmp_path / "a.parquet")["fov"].isna().all()
    dup = _table()
    dup.loc[1, "cell_id"] = dup.loc[0, "cell_id"]
    with pytest.raises(ValueError, match="must be unique"):
        write_cell_index(dup, tmp_path / "b.parquet")
    assert not (tmp_path / "b.parquet").exists()
    write_cell_index(dup, tmp_path / "b.parquet", validate=False)
    assert len(read_cell_index(tmp_path / "b.parquet")) == 4


def test_values_that_do_not_fit_the_schema_raise(tmp_path):
    with pytest.raises(pa.ArrowInvalid):
        write_cell_index(_table().assign(z=1.7), tmp_path / "z.parquet")
    assert list(tmp_path.iterdir()) == []


def test_read_conforms_foreign_parquet_and_missing_file(tmp_path):
    _table().drop(columns=["fov"]).assign(extra=2).to_parquet(tmp_path / "raw.parquet")
    back = read_cell_index(tmp_path / "raw.parquet")
    assert list(back.columns) == list(CELL_INDEX_COLUMN_TYPES)
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        read_cell_index(tmp_path / "nope.parquet")
