"""Cell index read / validate / write."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from viscy_data._typing import CELL_INDEX_CORE_COLUMNS, CELL_INDEX_TIMELAPSE_COLUMNS
from viscy_data.cell_index import read_cell_index, validate_cell_index, write_cell_index


def _table(n: int = 6) -> pd.DataFrame:
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
            "t": np.arange(n),
            "track_id": 1,
            "global_track_id": "e/A/1/0/1",
            "lineage_id": "e/A/1/0/1",
            "parent_track_id": -1,
            "hours_post_perturbation": np.arange(n) * 0.5,
            "interval_minutes": 30.0,
        }
    )


def test_valid_table_round_trips_csv(tmp_path):
    df = _table()
    assert validate_cell_index(df) == []
    path = tmp_path / "index.csv"
    write_cell_index(df, path)
    back = read_cell_index(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert not list(tmp_path.glob(".index.csv.*"))  # no temporary left behind


def test_problems_name_the_column():
    df = _table().drop(columns=["well"])
    df.loc[1, "cell_id"] = df.loc[0, "cell_id"]
    df.loc[2, "y"] = -3.0
    problems = validate_cell_index(df)
    text = " | ".join(problems)
    assert "['well']" in text
    assert "'cell_id' has duplicate" in text
    assert "'y' has negative" in text
    assert len(problems) == 3


def test_strict_requires_grouping_and_complete_timelapse():
    df = _table()
    strict = validate_cell_index(df, strict=True)
    assert any("grouping" in p for p in strict)
    partial = df.drop(columns=["lineage_id"])
    assert any("lineage_id" in p for p in validate_cell_index(partial, strict=True))
    assert not any("lineage_id" in p for p in validate_cell_index(partial))
    assert set(CELL_INDEX_TIMELAPSE_COLUMNS) <= set(df.columns)


def test_write_refuses_invalid_and_keeps_existing(tmp_path):
    path = tmp_path / "index.csv"
    write_cell_index(_table(3), path)
    before = path.read_text()
    with pytest.raises(ValueError, match=r"index.csv.*missing core"):
        write_cell_index(_table().drop(columns=["fov"]), path)
    assert path.read_text() == before
    write_cell_index(_table().drop(columns=["fov"]), tmp_path / "raw.csv", validate=False)


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_cell_index(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    _table().drop(columns=CELL_INDEX_CORE_COLUMNS[1:3]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"bad.csv.*experiment"):
        read_cell_index(bad)
    with pytest.raises(ValueError, match="format"):
        write_cell_index(_table(), tmp_path / "index.json")


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow installed")
def test_parquet_without_pyarrow_names_the_package(tmp_path):
    with pytest.raises(ImportError, match="pyarrow"):
        write_cell_index(_table(), tmp_path / "index.parquet")


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="needs pyarrow")
def test_parquet_round_trip(tmp_path):
    write_cell_index(_table(), tmp_path / "index.parquet")
    pd.testing.assert_frame_equal(read_cell_index(tmp_path / "index.parquet"), _table())
