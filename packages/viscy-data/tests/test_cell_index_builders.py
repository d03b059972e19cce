"""Cell index builders: the 0.1.0 behaviour found with the differential harness
(``tools/compat/sections/utils.py``), on plates of our synthetic generator."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from viscy_data.cell_index import (
    CELL_INDEX_COLUMN_TYPES,
    build_ops_cell_index,
    build_timelapse_cell_index,
    convert_ops_parquet,
    preprocess_cell_index,
    read_cell_index,
)

pytest.importorskip("pyarrow")


# ---------------------------------------------------------------- convert_ops_parquet


def _merged(tmp_path, df):
    path = tmp_path / "merged.parquet"
    df.to_parquet(path)
    return path


def test_convert_ops_parquet_columns(tmp_path):
    src = _merged(
        tmp_path,
        pd.DataFrame(
            {
                "store_key": ["k2", "k1", "k2"],
                "well": ["A/1/0", "B/3", "C"],
                "bbox": ["(0, 0, 10, 20)", "(5,6,15,9)", "1,2,3,4"],
                "gene_name": ["g", None, ""],
                "reporter": [None, "r", "r"],
                "channel": ["c0", "c1", None],
                "t": [7, 7, 7],  # ignored: OPS cells are single observations
            }
        ),
    )
    out = convert_ops_parquet(src, tmp_path / "ci.parquet", store_root="/r", store_suffix="s.zarr")
    assert out["cell_id"].tolist() == ["k2_0", "k1_1", "k2_2"]
    assert out["global_track_id"].tolist() == out["cell_id"].tolist() == out["lineage_id"].tolist()
    assert out["store_path"].tolist() == ["/r/k2/s.zarr", "/r/k1/s.zarr", "/r/k2/s.zarr"]
    # "well" splits at its last "/" into well and FOV; without "/" it is both
    assert out["well"].tolist() == ["A/1", "B", "C"]
    assert out["fov"].tolist() == ["0", "3", "C"]
    np.testing.assert_array_equal(out["y"], [5.0, 10.0, 2.0])  # bbox centres
    np.testing.assert_array_equal(out["x"], [10.0, 7.5, 3.0])
    assert out["gene_name"].tolist() == ["g", "NTC", ""]  # a null gene is a non-targeting guide
    assert out["perturbation"].tolist() == out["gene_name"].tolist()
    assert out["marker"].tolist() == [None, "r", "r"]  # marker is the reporter
    assert out["channel_name"].tolist() == ["c0", "c1", None]
    assert out["t"].tolist() == [0, 0, 0] and out["track_id"].tolist() == [0, 1, 2]
    assert out["parent_track_id"].tolist() == [-1, -1, -1]
    assert out["tracks_path"].tolist() == out["microscope"].tolist() == ["", "", ""]
    written = read_cell_index(tmp_path / "ci.parquet")
    assert written["cell_id"].tolist() == ["k2_0", "k1_1", "k2_2"]
    assert set(CELL_INDEX_COLUMN_TYPES) <= set(out.columns)


def test_convert_ops_parquet_minimal_and_errors(tmp_path):
    base = pd.DataFrame({"store_key": ["k"], "well": ["A/1/0"], "bbox": ["(0, 0, 2, 4)"]})
    out = convert_ops_parquet(_merged(tmp_path, base), tmp_path / "a.parquet")
    assert out["perturbation"].tolist() == ["unknown"] and out["gene_name"].tolist() == [None]
    assert out["channel_name"].tolist() == [""] and out["marker"].tolist() == [""]
    assert out["store_path"].tolist() == [
        "/hpc/projects/icd.fast.ops/k/3-assembly/phenotyping_v3.zarr"
    ]
    # rows are numbered by position, whatever index the file stored
    indexed = pd.concat([base, base.assign(well="A/1/1")]).set_axis([10, 20])
    out = convert_ops_parquet(_merged(tmp_path, indexed), tmp_path / "b.parquet")
    assert out["cell_id"].tolist() == ["k_0", "k_1"]
    with pytest.raises(KeyError, match="bbox"):
        convert_ops_parquet(_merged(tmp_path, base.drop(columns="bbox")), tmp_path / "c.parquet")
    with pytest.raises(ValueError, match="row 0 of column 'bbox'.*'\\(a, b\\)'"):
        convert_ops_parquet(_merged(tmp_path, base.assign(bbox="(a, b)")), tmp_path / "d.parquet")
    assert not (tmp_path / "d.parquet").exists()


# ---------------------------------------------------------------- build_ops_cell_index


def _labels(root, well, **columns):
    table = pd.DataFrame(
        {
            "channel": ["GFP", "Phase3D", "GFP", "GFP"],
            "gene_name": ["g1", "NTC", None, "g4"],
            "reporter": ["r", "r2", None, "r"],
            "bbox": ["(0, 0, 10, 20)", "(2, 3, 12, 9)", "(0,0,5,5)", "(0, 0, 4, 10)"],
            "segmentation_id": [1, 2, 3, None],
            **columns,
        }
    )
    root.mkdir(exist_ok=True)
    table.to_csv(root / f"{well.replace('/', '')}_linked_pheno_iss.csv", index=False)
    return table


def test_build_ops_cell_index(hcs_plate_v5, tmp_path, caplog):
    labels = tmp_path / "labels"
    _labels(labels, "A/1")
    pq = _labels(labels, "B/1", tile=[5, 6, 7, 8])
    pq.assign(gene_name="from_parquet").to_parquet(labels / "B1_linked_pheno_iss.parquet")
    out_path = tmp_path / "ops.parquet"
    with caplog.at_level(logging.WARNING):
        out = build_ops_cell_index(
            hcs_plate_v5.path,
            labels,
            "opsexp",
            out_path,
            perturbation_map={"inf": ["B/1"], "other": ["B/1"]},
        )
    # a box narrower than 5 px on a side and a row without segmentation id are dropped
    assert out["cell_id"].tolist() == [
        "opsexp_A/1/0_1",
        "opsexp_A/1/0_2",
        "opsexp_A/1/0_3",
        "opsexp_B/1/0_1",
        "opsexp_B/1/0_2",
        "opsexp_B/1/0_3",
    ]
    assert out["fov"].tolist() == ["0"] * 6  # the well's first FOV
    assert out["y"].tolist()[:3] == [5.0, 7.0, 2.5] and out["x"].tolist()[:3] == [10.0, 6.0, 2.5]
    assert (
        out["channel_name"].tolist()[:3] == out["marker"].tolist()[:3] == ["GFP", "Phase3D", "GFP"]
    )
    assert out["gene_name"].tolist() == ["g1", "NTC", "NTC"] + ["from_parquet"] * 3
    assert out["perturbation"].tolist() == ["unknown"] * 3 + ["inf"] * 3  # first entry wins
    assert out["store_path"].unique().tolist() == [str(hcs_plate_v5.path)]
    assert out["tracks_path"].unique().tolist() == [""]
    assert out["sgRNA"].isna().all()  # the label tables have no sgRNA column
    assert out["t"].isna().all() and "tile" in out.columns  # label columns are kept
    assert read_cell_index(out_path)["cell_id"].tolist() == out["cell_id"].tolist()
    assert not caplog.records
    # wells in the given order; a well without a label table is skipped with a warning
    shutil.rmtree(labels)
    _labels(labels, "B/1")
    with caplog.at_level(logging.WARNING):
        out = build_ops_cell_index(
            hcs_plate_v5.path, labels, "e", out_path, wells=["B/1", "A/1"], min_bbox_size=0
        )
    assert out["well"].tolist() == ["B/1"] * 3
    assert "No label file for well A/1" in caplog.text


def test_build_ops_cell_index_errors(hcs_plate_v5, tmp_path):
    labels = tmp_path / "labels"
    _labels(labels, "A/1").drop(columns="segmentation_id").to_csv(
        labels / "A1_linked_pheno_iss.csv", index=False
    )
    with pytest.raises(KeyError, match="segmentation_id"):
        build_ops_cell_index(hcs_plate_v5.path, labels, "e", tmp_path / "o.parquet", wells=["A/1"])
    with pytest.raises(ValueError, match=r"wells \['Z/9'\] are not in plate"):
        build_ops_cell_index(hcs_plate_v5.path, labels, "e", tmp_path / "o.parquet", wells=["Z/9"])
    with pytest.raises(FileNotFoundError):
        build_ops_cell_index(tmp_path / "none.zarr", labels, "e", tmp_path / "o.parquet")
    empty = build_ops_cell_index(
        hcs_plate_v5.path, tmp_path / "nolabels", "e", tmp_path / "o.parquet"
    )
    assert len(empty) == 0 and list(empty.columns) == list(CELL_INDEX_COLUMN_TYPES)


# ---------------------------------------------------------------- build_timelapse_cell_index


def _collection(tmp_path, plate, **overrides):
    exp = {
        "name": "exp1",
        "data_path": str(plate.path),
        "tracks_path": str(plate.tracks_path),
        "channels": [
            {"name": "Phase3D", "marker": "Phase3D"},
            {"name": "GFP", "marker": "SEC61B", "wells": ["B/1"]},
        ],
        "perturbation_wells": {"uninfected": ["A/1"], "infected": ["B/1", "A/1"]},
        "interval_minutes": 15.0,
        "start_hpi": 2.0,
        "microscope": "mantis",
        "pixel_size_xy_um": 0.2,
        "some_future_key": 1,  # ignored, as in 0.1.0
    }
    exp.update(overrides)
    path = tmp_path / "collection.yml"
    path.write_text(yaml.safe_dump({"name": "c", "experiments": [exp]}, sort_keys=False))
    return path


def test_build_timelapse_cell_index(hcs_plate_v5, tmp_path):
    out_path = tmp_path / "tl.parquet"
    out = build_timelapse_cell_index(_collection(tmp_path, hcs_plate_v5), out_path, num_workers=2)
    tracks = pd.read_csv(hcs_plate_v5.tracks_path / "A/1/0/tracks.csv")
    first = out[(out["well"] == "A/1") & (out["fov"] == "0")]
    # one row per track row and channel valid in the well, in file order
    assert first["channel_name"].unique().tolist() == ["Phase3D"]
    assert first["track_id"].tolist() == tracks["track_id"].tolist()
    assert first["cell_id"].tolist() == [
        f"exp1_A/1/0_{tr}_{t}" for tr, t in zip(tracks["track_id"], tracks["t"], strict=True)
    ]
    assert {"id", "parent_id"} <= set(out.columns)  # the CSV's own columns are kept
    assert first["perturbation"].unique().tolist() == ["uninfected"]  # first listing wins
    b = out[out["well"] == "B/1"]
    assert b["channel_name"].unique().tolist() == ["Phase3D", "GFP"]
    assert b.loc[b["channel_name"] == "GFP", "marker"].unique().tolist() == ["SEC61B"]
    np.testing.assert_allclose(out["hours_post_perturbation"], 2.0 + out["t"] * 15.0 / 60.0)
    assert out[["T_shape", "C_shape", "Z_shape", "Y_shape", "X_shape"]].iloc[0].tolist() == list(
        hcs_plate_v5.shape
    )
    # daughters belong to the lineage of their root ancestor
    children = out[out["parent_track_id"] >= 0]
    assert len(children)
    for _, child in children.iterrows():
        fov = f"exp1_{child['well']}/{child['fov']}"
        assert child["global_track_id"] == f"{fov}_{child['track_id']}"
        assert child["lineage_id"] == f"{fov}_{child['parent_track_id']}"  # one generation
    assert read_cell_index(out_path)["cell_id"].tolist() == out["cell_id"].tolist()
    # the result does not depend on the number of workers
    again = build_timelapse_cell_index(_collection(tmp_path, hcs_plate_v5), out_path, num_workers=1)
    pd.testing.assert_frame_equal(again, out)


def test_build_timelapse_filters_and_derived_channels(hcs_plate_v5, tmp_path):
    path = _collection(
        tmp_path,
        hcs_plate_v5,
        channels=[],
        channel_names=["GFP"],
        exclude_fovs=["B/1/1"],
        perturbation_wells={"x": ["A/1", "B/1"]},
    )
    out = build_timelapse_cell_index(path, tmp_path / "o.parquet", exclude_fovs=["A/1/0"])
    fovs = (out["well"] + "/" + out["fov"]).unique().tolist()
    assert fovs == ["A/1/1", "B/1/0"]
    assert out["marker"].unique().tolist() == ["GFP"]  # channel_names: marker is the name
    out = build_timelapse_cell_index(path, tmp_path / "o.parquet", include_wells=["B/1"])
    assert (out["well"] + "/" + out["fov"]).unique().tolist() == ["B/1/0"]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"perturbation_wells": {}}, "perturbation_wells must not be empty"),
        ({"channels": [{"name": "RFP", "marker": "R"}]}, r"channels \['RFP'\] are not in"),
        ({"data_path": None}, "missing required key 'data_path'"),
    ],
)
def test_build_timelapse_rejects_bad_collections(hcs_plate_v5, tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        build_timelapse_cell_index(
            _collection(tmp_path, hcs_plate_v5, **overrides), tmp_path / "o.parquet"
        )
    assert not (tmp_path / "o.parquet").exists()


def test_build_timelapse_duplicate_names_and_missing_tracks(hcs_plate_v5, tmp_path):
    path = _collection(tmp_path, hcs_plate_v5)
    content = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**content, "experiments": content["experiments"] * 2}))
    with pytest.raises(ValueError, match="duplicate experiment name 'exp1'"):
        build_timelapse_cell_index(path, tmp_path / "o.parquet")
    tracks = tmp_path / "tracks"
    shutil.copytree(hcs_plate_v5.tracks_path, tracks)
    (tracks / "B/1/0/tracks.csv").unlink()
    path = _collection(tmp_path, hcs_plate_v5, tracks_path=str(tracks))
    with pytest.raises(FileNotFoundError, match="B/1/0"):
        build_timelapse_cell_index(path, tmp_path / "o.parquet")


# ---------------------------------------------------------------- preprocess_cell_index


def test_preprocess_cell_index(hcs_plate_v5, tmp_path):
    from iohub.ngff import open_ome_zarr

    plate_path = tmp_path / "plate.zarr"
    shutil.copytree(hcs_plate_v5.path, plate_path)
    with open_ome_zarr(plate_path, layout="hcs", mode="r+") as plate:
        fov = plate["A/1/0"]
        norm = dict(fov.zattrs["normalization"])
        norm["Phase3D"]["timepoint_statistics"]["1"]["max"] = 0.0  # an empty frame
        del norm["GFP"]["timepoint_statistics"]["2"]  # no statistics for t=2
        fov.zattrs["normalization"] = norm
        fov.zattrs["focus_slice"] = {"Phase3D": {"fov_statistics": {"z_focus_mean": 3.5}}}
        b_stats = plate["B/1/0"].zattrs["normalization"]["Phase3D"]["timepoint_statistics"]
    path = _collection(
        tmp_path,
        hcs_plate_v5,
        data_path=str(plate_path),
        channels=[{"name": "Phase3D", "marker": "P"}, {"name": "GFP", "marker": "G"}],
    )
    index = tmp_path / "index.parquet"
    raw = build_timelapse_cell_index(path, index)
    assert preprocess_cell_index(index, tmp_path / "pre.parquet") is None
    out = read_cell_index(tmp_path / "pre.parquet")
    a0 = (raw["well"] == "A/1") & (raw["fov"] == "0")
    dropped = a0 & (
        ((raw["channel_name"] == "Phase3D") & (raw["t"] == 1))
        | ((raw["channel_name"] == "GFP") & (raw["t"] == 2))
    )
    assert len(out) == len(raw) - int(dropped.sum()) and dropped.any()
    b = out[(out["well"] == "B/1") & (out["fov"] == "0") & (out["channel_name"] == "Phase3D")]
    row = b.iloc[0]
    stats = b_stats[str(int(row["t"]))]
    for column, key in [("norm_mean", "mean"), ("norm_std", "std"), ("norm_iqr", "iqr")]:
        assert row[column] == pytest.approx(stats[key], rel=1e-6)  # each FOV its own
    focus = out.groupby(["well", "fov"], observed=True)["z_focus_mean"].first()
    assert focus[("A/1", "0")] == 3.5 and np.isnan(focus[("B/1", "0")])
    preprocess_cell_index(index, tmp_path / "gfp.parquet", focus_channel="GFP")
    assert read_cell_index(tmp_path / "gfp.parquet")["z_focus_mean"].isna().all()
    preprocess_cell_index(index)  # in place
    assert len(read_cell_index(index)) == len(out)


def test_preprocess_needs_normalization(hcs_plate_v5, tmp_path):
    from iohub.ngff import open_ome_zarr

    plate_path = tmp_path / "plate.zarr"
    shutil.copytree(hcs_plate_v5.path, plate_path)
    with open_ome_zarr(plate_path, layout="hcs", mode="r+") as plate:
        del plate["A/1/1"].zattrs["normalization"]
    index = tmp_path / "index.parquet"
    build_timelapse_cell_index(
        _collection(tmp_path, hcs_plate_v5, data_path=str(plate_path)), index
    )
    with pytest.raises(ValueError, match="A/1/1 .*no normalization metadata"):
        preprocess_cell_index(index, tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists()
