"""``dynaclr demo``: its building blocks, and a tiny end-to-end run."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import torch

from dynaclr._demo_data import CellCropDataset, TemporalTripletDataset
from dynaclr.demo import DemoConfig, _label, _prepare_out, _split_fovs


def _cells() -> pd.DataFrame:
    rows = []
    for fov in ("A/1/0", "A/1/1"):
        for track in (1, 2):
            for t in range(3):
                rows.append({"fov_name": fov, "track_id": track, "t": t, "id": t, "y": 8, "x": 8})
    return pd.DataFrame(rows)


def test_split_fovs_keeps_every_well_on_both_sides():
    fovs = [f"{w}/{i}" for w in ("A/1", "A/2", "B/1") for i in range(4)]
    train, held_out = _split_fovs(fovs)
    assert set(train).isdisjoint(held_out)
    assert len(train) == len(held_out) == 6
    for well in ("A/1", "A/2", "B/1"):
        assert any(f.startswith(well) for f in train)
        assert any(f.startswith(well) for f in held_out)


def test_temporal_triplets_pair_same_track_next_frame():
    cells = _cells()
    crops = np.arange(len(cells), dtype=np.float32)[:, None, None, None, None] * np.ones(
        (1, 2, 1, 12, 12), dtype=np.float32
    )
    ds = TemporalTripletDataset(crops, cells, patch_size=8, augment=False)
    assert len(ds) == 8  # 4 tracks x 2 consecutive pairs
    for k in range(len(ds)):
        i, j = ds.anchors[k], ds.positives[k]
        assert (
            cells.loc[i, ["fov_name", "track_id"]].tolist()
            == cells.loc[j, ["fov_name", "track_id"]].tolist()
        )
        assert cells.loc[j, "t"] == cells.loc[i, "t"] + 1
        sample = ds[k]
        assert sample["anchor"].shape == (2, 1, 8, 8)
        assert float(sample["anchor"][0, 0, 0, 0]) == i
        assert float(sample["positive"][0, 0, 0, 0]) == j
        assert float(sample["negative"][0, 0, 0, 0]) != i
    augmented = TemporalTripletDataset(crops, cells, patch_size=8, augment=True, seed=1)[0]
    assert augmented["anchor"].shape == (2, 1, 8, 8)


def test_cell_crop_dataset_carries_the_index():
    cells = _cells()
    crops = np.zeros((len(cells), 2, 1, 12, 12), dtype=np.float32)
    batch = torch.utils.data.default_collate([CellCropDataset(crops, cells, 8)[i] for i in (0, 4)])
    assert batch["anchor"].shape == (2, 2, 1, 8, 8)
    assert batch["index"]["fov_name"] == ["A/1/0", "A/1/0"]
    assert batch["index"]["t"].tolist() == [0, 1]


def test_label_lookup_and_missing_cell():
    cells = _cells()
    cells["infection_state"] = np.where(cells["t"] >= 1, "infected", "uninfected")
    obs = cells[["fov_name", "track_id", "t"]].iloc[[0, 1, 2]].copy()
    obs["fov_name"] = "/" + obs["fov_name"]
    assert _label(obs, cells).tolist() == ["uninfected", "infected", "infected"]
    obs.loc[obs.index[0], "t"] = 99
    with pytest.raises(KeyError, match="not in the plate"):
        _label(obs, cells)


def test_prepare_out_never_clobbers_user_files(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        _prepare_out(user, overwrite=True)
    assert (user / "notes.txt").read_text() == "keep me"

    demo = tmp_path / "demo"
    _prepare_out(demo, overwrite=False)
    (demo / "artifact").write_text("x")
    with pytest.raises(FileExistsError, match="--overwrite"):
        _prepare_out(demo, overwrite=False)
    _prepare_out(demo, overwrite=True)
    assert not (demo / "artifact").exists()


def test_quick_demo_end_to_end(tmp_path):
    from dynaclr.demo import run_demo

    result = run_demo(tmp_path / "demo", DemoConfig.quick(), progress=False)
    assert set(result.metrics) == {"trained", "untrained"}
    for metrics in result.metrics.values():
        assert 0.0 <= metrics["probe_accuracy"] <= 1.0
        assert metrics["temporal_smoothness"] > 0
    for key in ("checkpoint", "pca_png", "triplet_png", "embeddings_trained"):
        assert Path(result.files[key]).exists(), key
    trained = anndata.read_zarr(result.files["embeddings_trained"])
    untrained = anndata.read_zarr(result.files["embeddings_untrained"])
    assert trained.n_obs == untrained.n_obs > 0
    assert not np.allclose(np.asarray(trained.X), np.asarray(untrained.X))
    assert (tmp_path / "demo" / "results.json").exists()
    assert "probe accuracy" in result.table()
