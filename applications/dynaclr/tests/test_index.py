"""MultiExperimentIndex on hand-made tracks: columns, lineage, border clamping, anchors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dynaclr.experiment import ExperimentConfig, ExperimentRegistry
from dynaclr.index import MultiExperimentIndex


def _registry() -> ExperimentRegistry:
    common = dict(
        tracks_path="-",
        channel_names=["Phase3D", "GFP"],
        condition_wells={"uninfected": ["A/1"], "infected": ["B/1"]},
    )
    return ExperimentRegistry(
        [
            ExperimentConfig(name="e30", data_path="-", interval_minutes=30, start_hpi=2, **common),
            ExperimentConfig(name="e15", data_path="-", interval_minutes=15, **common),
        ],
        check_paths=False,
    )


def _row(exp, fov, track, t, y=32.0, x=32.0, parent=-1):
    return dict(experiment=exp, fov_name=fov, track_id=track, t=t, y=y, x=x, parent_track_id=parent)


@pytest.fixture
def tables():
    rows = []
    # e30 A/1/0: track 1 at t=0..3 divides into 2 and 3 (t=4..6); track 4 alone at t=0
    rows += [_row("e30", "A/1/0", 1, t) for t in range(4)]
    rows += [_row("e30", "A/1/0", d, t, parent=1) for d in (2, 3) for t in range(4, 7)]
    rows += [_row("e30", "A/1/0", 4, 0)]
    # border cells: near the edge (kept, clamped)
    rows += [_row("e30", "B/1/0", 7, t, y=2.0, x=63.0) for t in range(3)]
    # a well outside the condition wells is ignored
    rows += [_row("e30", "C/1/0", 9, t) for t in range(3)]
    # e15 (15 min frames): track 1 at t=0..9 in B/1/0, same track id as in e30
    rows += [_row("e15", "B/1/0", 1, t) for t in range(10)]
    shapes = {
        ("e30", "A/1/0"): (8, 2, 3, 64, 64),
        ("e30", "B/1/0"): (8, 2, 3, 64, 64),
        ("e30", "C/1/0"): (8, 2, 3, 64, 64),
        ("e15", "B/1/0"): (12, 3, 3, 64, 64),
    }
    return pd.DataFrame(rows), shapes


def _index(tables, tau=(0.5, 1.0)):
    tracks, shapes = tables
    return MultiExperimentIndex.from_tables(
        _registry(), tracks, shapes, yx_patch_size=(16, 16), tau_range_hours=tau
    )


def test_columns_and_metadata(tables):
    index = _index(tables)
    df = index.tracks
    for col in (
        "experiment",
        "condition",
        "global_track_id",
        "lineage_id",
        "hours_post_infection",
        "well_name",
        "fluorescence_channel",
        "y_origin",
        "x_origin",
    ):
        assert col in df.columns
    assert "C/1" not in set(df["well_name"])
    assert set(df["experiment"]) == {"e30", "e15"}
    e30 = df[(df["experiment"] == "e30") & (df["track_id"] == 1)]
    assert np.allclose(e30["hours_post_infection"], 2 + e30["t"] * 0.5)
    e15 = df[df["experiment"] == "e15"]
    assert np.allclose(e15["hours_post_infection"], e15["t"] * 0.25)
    assert set(e15["condition"]) == {"infected"}
    assert set(df["fluorescence_channel"]) == {"GFP"}
    # same track id in two experiments: different global ids
    assert df.loc[df["track_id"] == 1, "global_track_id"].nunique() == 2


def test_lineage_from_parent_track_id(tables):
    df = _index(tables).tracks
    a = df[(df["experiment"] == "e30") & (df["fov_name"] == "A/1/0")]
    parent_gid = a.loc[a["track_id"] == 1, "global_track_id"].iloc[0]
    assert parent_gid == "e30/A/1/0/1"
    daughters = a[a["track_id"].isin([2, 3])]
    assert set(daughters["lineage_id"]) == {parent_gid}
    assert set(a.loc[a["track_id"] == 4, "lineage_id"]) == {"e30/A/1/0/4"}


def test_border_cells_clamped_and_outside_rejected(tables):
    df = _index(tables).tracks
    border = df[(df["experiment"] == "e30") & (df["track_id"] == 7)]
    assert len(border) == 3
    assert set(border["y_origin"]) == {0}  # y=2: shifted down to 0
    assert set(border["x_origin"]) == {64 - 16}  # x=63: shifted left to fit
    # a centroid outside the image is bad input (one validator: viscy_data.validate_tracks)
    tracks, shapes = tables
    outside = pd.DataFrame([_row("e30", "B/1/0", 8, 0, y=70.0)])
    with pytest.raises(ValueError, match=r"experiment 'e30' FOV 'B/1/0'.*'y' is outside"):
        _index((pd.concat([tracks, outside], ignore_index=True), shapes))
    inner = df[(df["experiment"] == "e15")]
    assert set(inner["y_origin"]) == {32 - 8}


def test_valid_anchors_follow_division(tables):
    index = _index(tables)  # tau 0.5-1 h: 1-2 frames in e30, 2-4 frames in e15
    va = index.valid_anchors
    a = va[(va["experiment"] == "e30") & (va["fov_name"] == "A/1/0")]
    # track 1 at t=3 (last frame before division) is valid through its daughters
    assert sorted(a.loc[a["track_id"] == 1, "t"]) == [0, 1, 2, 3]
    assert sorted(a.loc[a["track_id"] == 2, "t"]) == [4, 5]  # t=6 has no future
    assert 4 not in set(a["track_id"])  # single-frame track
    e15 = va[va["experiment"] == "e15"]
    assert sorted(e15["t"]) == list(range(8))  # t + 2 <= 9
    assert np.array_equal(index.tracks.iloc[index.anchor_rows]["t"].to_numpy(), va["t"].to_numpy())


def test_positive_crosses_division_to_daughter(tables):
    index = _index(tables)
    df = index.tracks
    anchor = np.flatnonzero((df["experiment"] == "e30") & (df["track_id"] == 1) & (df["t"] == 3))
    rng = np.random.default_rng(0)
    picks = set()
    for _ in range(20):
        rows = index.positive_rows(anchor, np.array([1]), rng)
        assert rows[0] >= 0
        picks.add(int(df["track_id"].iloc[rows[0]]))
        assert df["t"].iloc[rows[0]] == 4
    assert picks == {2, 3}  # either daughter
    # own track preferred when it is observed at t + tau
    own = np.flatnonzero((df["experiment"] == "e30") & (df["track_id"] == 1) & (df["t"] == 1))
    assert df["track_id"].iloc[index.positive_rows(own, np.array([1]), rng)[0]] == 1
    pos, tau = index.sample_positives(index.anchor_rows, rng)
    assert np.all(pos >= 0)
    assert np.all(df["t"].to_numpy()[pos] - df["t"].to_numpy()[index.anchor_rows] == tau)
    assert np.all(
        df["lineage_id"].to_numpy()[pos] == df["lineage_id"].to_numpy()[index.anchor_rows]
    )


def test_errors_name_the_problem(tables):
    tracks, shapes = tables
    with pytest.raises(ValueError, match="exceeds FOV"):
        MultiExperimentIndex.from_tables(_registry(), tracks, shapes, yx_patch_size=(128, 128))
    with pytest.raises(ValueError, match="no image shape"):
        MultiExperimentIndex.from_tables(_registry(), tracks, {}, yx_patch_size=(16, 16))
    with pytest.raises(ValueError, match="'track_id'"):
        MultiExperimentIndex.from_tables(_registry(), tracks.drop(columns="track_id"), shapes)
