"""Tests of the synthetic plate generator against what iohub and pandas read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from iohub.ngff import open_ome_zarr

from viscy_data.synthetic import (
    STATISTICS_KEYS,
    TRACKS_COLUMNS,
    compute_statistics,
    main,
    write_synthetic_plate,
)

SHAPE = (5, 2, 6, 96, 96)


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def generated(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"synthetic_v{request.param}")
    plate = write_synthetic_plate(
        root / "plate.zarr",
        shape=SHAPE,
        version=request.param,
        seed=3,
        foreground_mask=True,
        tracks_path=root / "tracks",
        cells_per_fov=4,
    )
    return plate


def test_layout_shape_dtype_and_format(generated):
    zarr_meta = "zarr.json" if (generated.path / "zarr.json").exists() else ".zgroup"
    with open_ome_zarr(generated.path) as plate:
        names = [name for name, _ in plate.positions()]
        assert names == generated.fov_names == ["A/1/0", "A/1/1", "B/1/0", "B/1/1"]
        assert plate.channel_names == ["Phase3D", "GFP"]
        position = plate["A/1/0"]
        assert position["0"].shape == SHAPE
        assert position["0"].dtype == np.uint16
        assert position["fg_mask"].shape == SHAPE
        assert position["fg_mask"].dtype == np.uint8
    # NGFF 0.4 is zarr v2 (.zgroup), NGFF 0.5 is zarr v3 (zarr.json)
    v3 = (generated.path / "A" / "1" / "0" / "0" / "zarr.json").exists()
    v2 = (generated.path / "A" / "1" / "0" / "0" / ".zarray").exists()
    assert v3 != v2
    assert zarr_meta in {"zarr.json", ".zgroup"}


def test_normalization_metadata_matches_pixels(generated):
    with open_ome_zarr(generated.path) as plate:
        position = plate["B/1/0"]
        norm = position.zattrs["normalization"]
        plate_norm = plate.zattrs["normalization"]
        data = position["0"][:]
    assert set(norm) == {"Phase3D", "GFP"}
    for c, channel in enumerate(["Phase3D", "GFP"]):
        levels = norm[channel]
        assert set(levels) == {"dataset_statistics", "fov_statistics", "timepoint_statistics"}
        assert set(levels["timepoint_statistics"]) == {str(t) for t in range(SHAPE[0])}
        assert set(levels["fov_statistics"]) == set(STATISTICS_KEYS)
        assert levels["dataset_statistics"] == plate_norm[channel]["dataset_statistics"]
        full = compute_statistics(data[:, c])
        assert levels["fov_statistics"]["mean"] == pytest.approx(full["mean"], rel=0.05)
        assert levels["fov_statistics"]["median"] == pytest.approx(full["median"], rel=0.05)
        t2 = compute_statistics(data[2, c])
        assert levels["timepoint_statistics"]["2"]["mean"] == pytest.approx(t2["mean"], rel=0.05)


def test_tracks_csv_layout_and_types(generated):
    for fov in generated.fov_names:
        csv = generated.tracks_path / fov / "tracks.csv"
        df = pd.read_csv(csv)
        assert list(df.columns) == TRACKS_COLUMNS
        for col in ("track_id", "t", "id", "parent_track_id", "parent_id", "z"):
            assert pd.api.types.is_integer_dtype(df[col]), col
        assert df["id"].is_unique
        assert df["t"].between(0, SHAPE[0] - 1).all()
        assert df["z"].between(0, SHAPE[2] - 1).all()
        assert df["y"].between(0, SHAPE[3] - 1).all() and df["x"].between(0, SHAPE[4] - 1).all()
        # one detection per track and timepoint
        assert not df.duplicated(["track_id", "t"]).any()
    conditions = pd.read_csv(generated.tracks_path / "cell_conditions.csv")
    assert {"fov_name", "track_id", "condition", "infection_state"} <= set(conditions.columns)
    assert len(conditions) == len(generated.cells)


def test_lineage_is_valid(generated):
    cells = generated.cells
    n_divisions = 0
    for fov, df in cells.groupby("fov_name"):
        by_track = df.groupby("track_id")
        first_t = by_track["t"].min()
        last_t = by_track["t"].max()
        last_id = df.loc[df.groupby("track_id")["t"].idxmax()].set_index("track_id")["id"]
        daughters = df[df["parent_track_id"] >= 0]
        for row in daughters.itertuples():
            parent = row.parent_track_id
            assert parent in first_t.index, f"{fov}: unknown parent track {parent}"
            assert row.t == first_t[row.track_id], "parent link only on the first row"
            assert last_t[parent] == row.t - 1, "daughter starts right after the parent ends"
            assert row.parent_id == last_id[parent]
        # a dividing parent has exactly two daughters
        counts = daughters.groupby("parent_track_id")["track_id"].nunique()
        assert (counts == 2).all()
        n_divisions += len(counts)
        # tracks are contiguous in time
        spans = last_t - first_t + 1
        assert (spans == by_track.size()).all()
    assert n_divisions > 0


def test_tracks_consistent_with_images(generated):
    """At each centroid the focal slice is brighter than the frame's median, and masked."""
    with open_ome_zarr(generated.path) as plate:
        for fov in generated.fov_names[:2]:
            image = plate[fov]["0"][:]
            mask = plate[fov]["fg_mask"][:]
            df = generated.cells[generated.cells["fov_name"] == fov]
            yy = np.rint(df["y"].to_numpy()).astype(int)
            xx = np.rint(df["x"].to_numpy()).astype(int)
            tt, zz = df["t"].to_numpy(), df["z"].to_numpy()
            phase = image[tt, 0, zz, yy, xx].astype(float)
            medians = np.median(image[:, 0], axis=(1, 2, 3))[tt]
            assert (phase > medians + 500).mean() > 0.95
            assert mask[tt, 0, zz, yy, xx].all()
            assert 0.0 < mask.mean() < 0.5


def test_infected_cells_carry_reporter(generated):
    with open_ome_zarr(generated.path) as plate:
        values = {}
        for state in ("infected", "uninfected"):
            df = generated.cells[generated.cells["infection_state"] == state]
            vals = []
            for fov, sub in df.groupby("fov_name"):
                gfp = plate[fov]["0"][:, 1]
                yy = np.rint(sub["y"].to_numpy()).astype(int)
                xx = np.rint(sub["x"].to_numpy()).astype(int)
                vals.append(gfp[sub["t"].to_numpy(), sub["z"].to_numpy(), yy, xx])
            values[state] = np.concatenate(vals)
    assert values["infected"].mean() > 5 * values["uninfected"].mean()
    # infection only in the infected well, and only after the onset
    infected_rows = generated.cells[generated.cells["infection_state"] == "infected"]
    assert set(infected_rows["condition"]) == {"infected"}
    assert infected_rows["t"].min() >= SHAPE[0] // 3


def test_deterministic_for_a_seed(tmp_path):
    kwargs = dict(shape=(3, 1, 2, 48, 48), channel_names=["GFP"], cells_per_fov=3)
    a = write_synthetic_plate(tmp_path / "a.zarr", seed=7, tracks_path=tmp_path / "ta", **kwargs)
    b = write_synthetic_plate(tmp_path / "b.zarr", seed=7, tracks_path=tmp_path / "tb", **kwargs)
    c = write_synthetic_plate(tmp_path / "c.zarr", seed=8, **kwargs)
    pd.testing.assert_frame_equal(a.cells, b.cells)
    assert (tmp_path / "ta/A/1/0/tracks.csv").read_text() == (
        tmp_path / "tb/A/1/0/tracks.csv"
    ).read_text()
    with open_ome_zarr(a.path) as pa, open_ome_zarr(b.path) as pb, open_ome_zarr(c.path) as pc:
        for fov in a.fov_names:
            np.testing.assert_array_equal(pa[fov]["0"][:], pb[fov]["0"][:])
        assert not np.array_equal(pa["A/1/0"]["0"][:], pc["A/1/0"]["0"][:])
        assert pa["A/1/0"].zattrs["normalization"] == pb["A/1/0"].zattrs["normalization"]


def test_dtype_chunks_and_sharding(tmp_path):
    plate = write_synthetic_plate(
        tmp_path / "f.zarr",
        shape=(2, 1, 4, 64, 64),
        channel_names=["Phase3D"],
        wells=[("C", "4")],
        fovs_per_well=1,
        dtype="float32",
        chunks=(1, 1, 2, 32, 32),
        shards_ratio=(1, 1, 2, 2, 2),
        version="0.5",
        normalization=False,
    )
    with open_ome_zarr(plate.path) as p:
        array = p["C/4/0"]["0"]
        assert array.dtype == np.float32
        assert array.chunks == (1, 1, 2, 32, 32)
        assert "normalization" not in p["C/4/0"].zattrs
    assert plate.fov_names == ["C/4/0"]
    assert set(plate.cells["condition"]) == {"uninfected"}


def test_refuses_to_overwrite_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "exists.zarr"
    target.mkdir()
    with pytest.raises(FileExistsError, match="exists.zarr"):
        write_synthetic_plate(target, shape=(1, 1, 1, 32, 32), channel_names=["GFP"])
    with pytest.raises(ValueError, match="channel names"):
        write_synthetic_plate(tmp_path / "x.zarr", shape=(1, 2, 1, 32, 32), channel_names=["GFP"])
    with pytest.raises(ValueError, match="too small"):
        write_synthetic_plate(tmp_path / "y.zarr", shape=(1, 1, 1, 8, 8), channel_names=["GFP"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.zarr"]


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    code = main(
        [
            str(out),
            "--shape",
            "2,1,2,48,48",
            "--channels",
            "GFP",
            "--wells",
            "A/1",
            "--fovs-per-well",
            "1",
            "--version",
            "0.4",
            "--tracks",
            str(tmp_path / "tracks"),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fovs"] == ["A/1/0"] and summary["shape"] == [2, 1, 2, 48, 48]
    assert (tmp_path / "tracks" / "A" / "1" / "0" / "tracks.csv").exists()
    assert Path(summary["path"]) == out


def test_command_help_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "viscy_data.synthetic", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--version" in result.stdout and "--tracks" in result.stdout


def test_writing_logs_no_iohub_warning(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        write_synthetic_plate(tmp_path / "q.zarr", shape=(1, 1, 1, 32, 32), channel_names=["GFP"])
    assert not [r for r in caplog.records if r.name.startswith("iohub")]


def _cell_windows(tmp_path, phenotype):
    """(infection_state, GFP window - 100, label-free window), 17 x 17 around each cell."""
    plate = write_synthetic_plate(
        tmp_path / "plate.zarr",
        shape=(6, 2, 1, 128, 128),
        wells=(("A", "1"), ("B", "1")),
        fovs_per_well=2,
        cells_per_fov=8,
        seed=1,
        tracks_path=tmp_path / "tracks",
        infection_onset=1,
        phenotype=phenotype,
    )
    with open_ome_zarr(plate.path) as store:
        for fov, cells in plate.cells.groupby("fov_name"):
            image = store[fov]["0"].numpy().astype(np.float32)
            for cell in cells.itertuples():
                y, x = int(round(cell.y)), int(round(cell.x))
                if not (8 <= y < 120 and 8 <= x < 120):
                    continue
                gfp = image[cell.t, 1, 0, y - 8 : y + 9, x - 8 : x + 9] - 100.0
                phase = image[cell.t, 0, 0, y - 8 : y + 9, x - 8 : x + 9]
                yield cell.infection_state, gfp, phase


def test_translocation_hides_infection_from_fluorescence_statistics(tmp_path):
    """Infection moves the reporter focus onto the nucleus; GFP alone looks alike.

    Per cell, the share of the reporter in the brightest pixels is alike in both states
    (within sampling noise), while the label-free pixels under the focus tell them apart:
    dark (nucleus) once infected, bright (cytoplasm) before.
    """
    rows = {"infected": [], "uninfected": []}
    for state, gfp, phase in _cell_windows(tmp_path, "translocation"):
        peak = np.unravel_index(np.argmax(gfp), gfp.shape)
        rows[state].append((gfp.sum(), np.sort(gfp.ravel())[-20:].mean() / gfp.sum(), phase[peak]))
    infected, uninfected = (np.array(rows[k]) for k in ("infected", "uninfected"))
    assert len(infected) > 50 and len(uninfected) > 50
    share = np.median(infected[:, 1]) / np.median(uninfected[:, 1])
    assert abs(share - 1) < 0.15, share
    # under the focus, the label-free image is darker when the focus is on the nucleus
    assert np.median(infected[:, 2]) < np.median(uninfected[:, 2]) - 200


def test_relocalization_defocus_inverts_labelfree_in_half_of_the_frames(tmp_path):
    """Infection concentrates the reporter in the nucleus at about the same total; the
    label-free body is darker than the background in about half of the cell frames."""
    rows = {"infected": [], "uninfected": []}
    for state, gfp, phase in _cell_windows(tmp_path, "relocalization_defocus"):
        centre = gfp[6:11, 6:11].sum() / gfp.sum()
        rows[state].append((gfp.sum(), centre, phase[6:11, 6:11].mean()))
    infected, uninfected = (np.array(rows[k]) for k in ("infected", "uninfected"))
    assert len(infected) > 50 and len(uninfected) > 50
    total = np.median(infected[:, 0]) / np.median(uninfected[:, 0])
    assert abs(total - 1) < 0.3, total
    assert np.median(infected[:, 1]) > 1.3 * np.median(uninfected[:, 1])
    inverted = np.mean(np.concatenate([infected[:, 2], uninfected[:, 2]]) < 700.0)
    assert 0.3 < inverted < 0.7, inverted
