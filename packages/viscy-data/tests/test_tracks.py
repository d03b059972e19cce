"""Tracks loading, validation and triplet sampling (no image data needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from viscy_data._tracks import (
    TrackIndex,
    batch_rng,
    find_tracks_csv,
    patch_starts,
    read_tracks_csv,
    validate_tracks,
    window_inside,
)

SHAPE = (4, 2, 8, 128, 128)  # T, C, Z, Y, X


def _lineage_table() -> pd.DataFrame:
    """Track 1 lives t=0..3; track 2 lives t=0..1 and divides into tracks 3 and 4 (t=2..3)."""
    rows = []
    for t in range(4):
        rows.append((1, t, -1, 20.0, 20.0))
    for t in range(2):
        rows.append((2, t, -1, 60.0, 60.0))
    for t in (2, 3):
        rows.append((3, t, 2, 55.0, 60.0))
        rows.append((4, t, 2, 65.0, 60.0))
    table = pd.DataFrame(rows, columns=["track_id", "t", "parent_track_id", "y", "x"])
    table = validate_tracks(table, "test table", "A/1/0", SHAPE)
    return table.assign(fov_index=0)


def _write_csv(tmp_path, text: str, fov: str = "A/1/0"):
    folder = tmp_path / fov
    folder.mkdir(parents=True)
    path = folder / "tracks.csv"
    path.write_text(text)
    return path


def test_read_valid_csv_truncates_centroids(tmp_path):
    path = _write_csv(
        tmp_path, "track_id,t,y,x,id\n1,0,10.5,10.49,7\n1,1,11.6,0.2,8\n2,0,100,127.9,9\n"
    )
    assert find_tracks_csv(tmp_path, "/A/1/0") == path
    tracks = read_tracks_csv(path, "A/1/0", SHAPE)
    # as 0.1.0: the pixel that holds the centroid (int(11.6) = 11), not the nearest one
    assert tracks["y"].tolist() == [10, 11, 100]
    assert tracks["x"].tolist() == [10, 0, 127]
    assert tracks["id"].tolist() == [7, 8, 9]
    assert tracks["parent_track_id"].tolist() == [-1, -1, -1]  # optional column filled
    assert tracks["z"].tolist() == [0, 0, 0]
    assert tracks["fov_name"].unique().tolist() == ["A/1/0"]
    assert tracks["track_id"].dtype == np.int64


def test_missing_folder_and_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="A/1/0"):
        find_tracks_csv(tmp_path, "A/1/0")
    (tmp_path / "A/1/0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="No tracks CSV"):
        find_tracks_csv(tmp_path, "A/1/0")


@pytest.mark.parametrize(
    ("text", "require_all", "match"),
    [
        ("track_id,t,y\n1,0,3\n", False, r"lacks column\(s\) \['x'\]"),
        ("track_id,t,y,x\n1,0,3,4\n", True, r"lacks column\(s\) \['id', 'parent_track_id'"),
        ("track_id,t,y,x\n1,0,3,4\n,1,3,4\n", False, r"'track_id' .* line\(s\) 3"),
        ("track_id,t,y,x\n1,0,3,4\nabc,1,3,4\n", False, r"'track_id' .*non-numeric .* 3"),
        ("track_id,t,y,x\n1.5,0,3,4\n", False, r"'track_id' .*fractional"),
        ("track_id,t,y,x\n1,0,3,4\n1,4,3,4\n", False, r"'t' is beyond .* 4 timepoints"),
        ("track_id,t,y,x\n1,0,128,4\n", False, r"'y' is outside the image .*line\(s\) 2"),
        ("track_id,t,y,x\n1,0,3,-0.6\n", False, r"'x' is outside the image"),
        ("track_id,t,y,x\n1,0,3,nan\n", False, r"'x' must hold numbers"),
        ("track_id,t,y,x\n1,0,3,4\n1,0,5,4\n", False, r"same \(track_id, t\)"),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path, text, require_all, match):
    path = _write_csv(tmp_path, text)
    with pytest.raises(ValueError, match=match) as err:
        read_tracks_csv(path, "A/1/0", SHAPE, require_all_columns=require_all)
    assert str(path) in str(err.value)


def test_unreadable_csv(tmp_path):
    path = _write_csv(tmp_path, "")
    with pytest.raises(ValueError, match=r"Cannot read tracks CSV .*tracks.csv"):
        read_tracks_csv(path, "A/1/0", SHAPE)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81\x00garbage\x00")
    with pytest.raises(ValueError, match="bin.csv"):
        read_tracks_csv(binary, "A/1/0", SHAPE)


def test_border_windows_shift_inward():
    starts = patch_starts(np.array([0, 5, 64, 125, 127]), 16, 128)
    assert starts.tolist() == [0, 0, 56, 112, 112]
    assert ((starts >= 0) & (starts + 16 <= 128)).all()
    inside = window_inside(np.array([0, 8, 64, 120, 121]), 16, 128)
    assert inside.tolist() == [False, True, True, True, False]


def test_without_lineage_a_dividing_track_ends_its_anchors():
    # 0.1.0's rule: the positive is the anchor's own track at t + dt, never a daughter
    tracks = _lineage_table()
    index = TrackIndex(tracks, time_interval=1, follow_lineage=False)
    keys = list(zip(tracks["track_id"], tracks["t"], strict=True))
    assert {keys[r] for r in index.anchors} == {(1, 0), (1, 1), (1, 2), (2, 0), (3, 2), (4, 2)}
    positives = index.positives(index.anchors, np.random.default_rng(0))
    assert [keys[r] for r in positives] == [
        (k[0], k[1] + 1) for k in map(keys.__getitem__, index.anchors)
    ]


def test_positive_same_track_then_lineage():
    tracks = _lineage_table()
    index = TrackIndex(tracks, time_interval=1)
    keys = list(zip(tracks["track_id"], tracks["t"], strict=True))
    # anchors with a positive 1 frame later: all but the last frame of tracks 1, 3, 4
    anchors = {keys[r] for r in index.anchors}
    assert anchors == {(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (3, 2), (4, 2)}
    rng = np.random.default_rng(0)
    row_of = {k: i for i, k in enumerate(keys)}
    same = index.positives(np.array([row_of[(1, 0)], row_of[(2, 0)]]), rng)
    assert [keys[r] for r in same] == [(1, 1), (2, 1)]
    # track 2 ends at t=1 in a division: its positive at t=2 is one of the daughters
    daughters = {keys[r] for r in index.positives(np.full(200, row_of[(2, 1)]), rng)}
    assert daughters == {(3, 2), (4, 2)}


def test_positive_follows_lineage_over_two_frames():
    tracks = _lineage_table()
    index = TrackIndex(tracks, time_interval=2)
    keys = list(zip(tracks["track_id"], tracks["t"], strict=True))
    anchors = {keys[r] for r in index.anchors}
    assert anchors == {(1, 0), (1, 1), (2, 0), (2, 1)}
    row = keys.index((2, 1))
    found = {keys[r] for r in index.positives(np.full(100, row), np.random.default_rng(1))}
    assert found == {(3, 3), (4, 3)}


def test_negatives_are_other_tracks_at_positive_time():
    tracks = _lineage_table()
    index = TrackIndex(tracks, time_interval=1)
    rng = np.random.default_rng(3)
    anchors = np.repeat(index.anchors, 50)
    positives = index.positives(anchors, rng)
    negatives = index.negatives(anchors, positives, rng)
    track = index.track
    assert (track[negatives] != track[anchors]).all()
    assert (track[negatives] != track[positives]).all()
    assert (index.t[negatives] == index.t[anchors] + 1).all()


def test_any_interval_positive_is_anchor_and_negative_any_time():
    tracks = _lineage_table()
    index = TrackIndex(tracks, time_interval="any")
    assert len(index) == len(tracks)
    rng = np.random.default_rng(0)
    anchors = np.repeat(index.anchors, 20)
    positives = index.positives(anchors, rng)
    assert (positives == anchors).all()
    negatives = index.negatives(anchors, positives, rng)
    assert (index.track[negatives] != index.track[anchors]).all()
    assert len(np.unique(index.t[negatives])) > 1


def test_negatives_need_two_tracks():
    tracks = _lineage_table()
    index = TrackIndex(tracks[tracks["track_id"] == 1], time_interval=1)
    with pytest.raises(ValueError, match="two tracks"):
        index.negatives(
            index.anchors, index.positives(index.anchors, batch_rng(0, [0])), batch_rng(0, [0])
        )


def test_batch_rng_reproducible_and_distinct():
    a = batch_rng(7, [1, 2, 3]).random(4)
    assert np.array_equal(a, batch_rng(7, [1, 2, 3]).random(4))
    assert not np.array_equal(a, batch_rng(8, [1, 2, 3]).random(4))
    assert not np.array_equal(a, batch_rng(7, [1, 2, 4]).random(4))


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_time_interval(bad):
    with pytest.raises(ValueError, match="time_interval"):
        TrackIndex(_lineage_table(), time_interval=bad)


def test_large_table_is_vectorized():
    """Sampling 10^5 cells needs no per-anchor scan: building and drawing stay cheap."""
    rng = np.random.default_rng(0)
    n_tracks, n_t = 5000, 20
    table = pd.DataFrame(
        {
            "track_id": np.repeat(np.arange(n_tracks), n_t),
            "t": np.tile(np.arange(n_t), n_tracks),
            "y": rng.uniform(0, 127, n_tracks * n_t),
            "x": rng.uniform(0, 127, n_tracks * n_t),
        }
    )
    table = validate_tracks(table, "big", "A/1/0", (n_t, 1, 1, 128, 128)).assign(fov_index=0)
    index = TrackIndex(table, time_interval=3)
    assert len(index) == n_tracks * (n_t - 3)
    anchors = index.anchors[:4096]
    positives = index.positives(anchors, rng)
    assert (index.track[positives] == index.track[anchors]).all()
    assert (index.t[positives] == index.t[anchors] + 3).all()
    negatives = index.negatives(anchors, positives, rng)
    assert (index.track[negatives] != index.track[anchors]).all()
