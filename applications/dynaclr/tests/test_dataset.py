"""MultiExperimentTripletDataset on two synthetic experiments (different channels, intervals)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from dynaclr.dataset import MultiExperimentTripletDataset
from dynaclr.experiment import ExperimentRegistry
from dynaclr.index import MultiExperimentIndex
from viscy_data.synthetic import write_synthetic_plate

PATCH = (24, 24)


@pytest.fixture(scope="module")
def experiments_yaml(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiexp")
    specs = [
        ("exp_a", (6, 2, 2, 64, 64), ("Phase3D", "GFP"), 30, "0.5"),
        ("exp_b", (8, 3, 2, 64, 64), ("Phase3D", "mCherry", "GFP"), 15, "0.4"),
    ]
    experiments = []
    for i, (name, shape, channels, interval, version) in enumerate(specs):
        write_synthetic_plate(
            root / f"{name}.zarr",
            shape=shape,
            channel_names=channels,
            fovs_per_well=1,
            version=version,
            seed=i,
            tracks_path=root / f"{name}_tracks",
            cells_per_fov=6,
        )
        experiments.append(
            {
                "name": name,
                "data_path": f"{name}.zarr",
                "tracks_path": f"{name}_tracks",
                "channel_names": list(channels),
                "condition_wells": {"uninfected": ["A/1"], "infected": ["B/1"]},
                "interval_minutes": interval,
                "start_hpi": 1.0,
            }
        )
    path = root / "experiments.yml"
    path.write_text(yaml.safe_dump({"training_channels": "all", "experiments": experiments}))
    return path


@pytest.fixture(scope="module")
def dataset(experiments_yaml):
    registry = ExperimentRegistry.from_yaml(experiments_yaml)
    index = MultiExperimentIndex(registry, yx_patch_size=PATCH, tau_range_hours=(0.5, 0.5))
    return MultiExperimentTripletDataset(index, return_negative=True, return_index=True, seed=3)


def test_batch_layout_and_zero_padded_channel(dataset):
    assert dataset.channel_names == ["Phase3D", "GFP", "mCherry"]
    va = dataset.index.valid_anchors
    idx = list(range(0, len(va), max(1, len(va) // 16)))[:16]
    batch = dataset.__getitems__(idx)
    for key in ("anchor", "positive", "negative"):
        assert batch[key].shape == (len(idx), 3, 2, *PATCH)
        assert batch[key].dtype == torch.float32
        assert batch[f"{key}_norm_meta"]["GFP"]["fov_statistics"]["mean"].shape == (len(idx),)
    exp = np.array(batch["index"]["experiment"])
    assert set(exp) == {"exp_a", "exp_b"}
    # exp_a has no mCherry: zeros there; exp_b has data there
    assert torch.all(batch["anchor"][torch.from_numpy(exp == "exp_a"), 2] == 0)
    assert batch["anchor"][torch.from_numpy(exp == "exp_b"), 2].abs().sum() > 0
    assert batch["anchor"][:, :2].abs().sum() > 0
    # negatives come from another lineage
    anchors = dataset.index.anchor_rows[idx]
    negatives = dataset._negatives(anchors, np.random.default_rng(0))
    lineage = dataset.index.tracks["lineage_id"].to_numpy()
    assert np.all(lineage[negatives] != lineage[anchors])


def test_positive_is_later_frame_of_same_cell(dataset):
    index = dataset.index
    anchors = index.anchor_rows[:32]
    positives, tau = index.sample_positives(anchors, np.random.default_rng(0))
    df = index.tracks
    # tau range 0.5 h: 1 frame in exp_a (30 min), 2 frames in exp_b (15 min)
    exp = df["experiment"].to_numpy()[anchors]
    assert np.all(tau[exp == "exp_a"] == 1)
    assert np.all(tau[exp == "exp_b"] == 2)
    assert np.all(df["lineage_id"].to_numpy()[positives] == df["lineage_id"].to_numpy()[anchors])


def test_positive_crosses_division_to_daughter(dataset):
    index = dataset.index
    df = index.tracks
    daughters = df[df["parent_track_id"] >= 0]
    assert len(daughters), "the synthetic plates have divisions"
    first = daughters.groupby("global_track_id", observed=True)["t"].idxmin()
    d = df.loc[first]
    parent_rows = []
    for _, row in d.iterrows():
        tau = 1 if row["experiment"] == "exp_a" else 2
        match = df[
            (df["experiment"] == row["experiment"])
            & (df["fov_name"] == row["fov_name"])
            & (df["track_id"] == row["parent_track_id"])
            & (df["t"] == row["t"] - tau)
        ]
        parent_rows += list(match.index)
    parent_rows = np.unique(parent_rows)
    assert len(parent_rows)
    # the parent track ends before t + tau: its positive is a daughter's row at t + tau
    valid_pos = np.flatnonzero(np.isin(index.anchor_rows, parent_rows))
    batch_rows = index.anchor_rows[valid_pos]
    positives, tau = index.sample_positives(batch_rows, np.random.default_rng(1))
    pos_parent = df["parent_track_id"].to_numpy()[positives]
    own_track = df["track_id"].to_numpy()[batch_rows]
    crossed = pos_parent == own_track
    assert crossed.any()
    # and the dataset returns exactly the daughter's patch for such an anchor
    i = int(valid_pos[np.flatnonzero(crossed)[0]])
    batch = dataset.__getitems__([i])
    daughters_rows = df.index[
        (df["experiment"] == df["experiment"].iloc[batch_rows[0]])
        & (df["fov_name"] == df["fov_name"].iloc[index.anchor_rows[i]])
        & (df["parent_track_id"] == df["track_id"].iloc[index.anchor_rows[i]])
        & (df["t"] == df["t"].iloc[index.anchor_rows[i]] + tau[np.flatnonzero(crossed)[0]])
    ].to_numpy()
    candidates = dataset._read(daughters_rows)
    assert any(torch.equal(batch["positive"][0], c) for c in candidates)


def test_norm_meta_matches_plate(dataset, experiments_yaml):
    from iohub.ngff import open_ome_zarr

    va = dataset.index.valid_anchors
    i = int(np.flatnonzero(va["experiment"] == "exp_b")[0])
    row = va.iloc[i]
    batch = dataset.__getitems__([i])
    with open_ome_zarr(experiments_yaml.parent / "exp_b.zarr", mode="r") as plate:
        meta = plate[row["fov_name"]].zattrs["normalization"]
    expected = meta["GFP"]["timepoint_statistics"][str(row["t"])]["mean"]
    got = batch["anchor_norm_meta"]["GFP"]["timepoint_statistics"]["mean"][0].item()
    assert got == pytest.approx(expected, rel=1e-5)
    # anchor patch equals a direct read of the clamped box
    with open_ome_zarr(experiments_yaml.parent / "exp_b.zarr", mode="r") as plate:
        image = plate[row["fov_name"]]["0"]
        y0, x0 = int(row["y_origin"]), int(row["x_origin"])
        direct = image[int(row["t"]), 2, 0:2, y0 : y0 + PATCH[0], x0 : x0 + PATCH[1]]
    assert np.array_equal(batch["anchor"][0, 1].numpy(), direct.astype(np.float32))


def test_dataloader_with_sampler(dataset):
    from torch.utils.data import DataLoader

    from viscy_data.sampler import FlexibleBatchSampler

    sampler = FlexibleBatchSampler(
        dataset.index.valid_anchors, batch_size=8, experiment_aware=True, condition_balanced=True
    )
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=lambda x: x)
    batches = list(loader)
    assert len(batches) == len(sampler) > 0
    assert batches[0]["anchor"].shape == (8, 3, 2, *PATCH)


def test_mixed_batch_rows_match_single_reads(dataset):
    """Rows read in place (runs per experiment, scattered negatives) equal one-by-one reads."""
    va = dataset.index.valid_anchors
    idx = list(range(0, len(va), max(1, len(va) // 12)))[:12]
    # the batch's generator decides positives / negatives: replay it for the reference rows
    batch = dataset.__getitems__(idx)
    rng = dataset.batch_generator(idx)
    anchors = dataset.index.anchor_rows[np.asarray(idx)]
    anchors = anchors[np.argsort(dataset._row_exp[anchors], kind="stable")]
    positives, _ = dataset.index.sample_positives(anchors, rng)
    negatives = dataset._negatives(anchors, rng)
    assert len(set(dataset._row_exp[negatives].tolist())) == 2  # scattered experiments
    for key, rows in (("anchor", anchors), ("positive", positives), ("negative", negatives)):
        expected = torch.cat([dataset._read(np.array([r])) for r in rows])
        assert torch.equal(batch[key], expected), key


def test_store_dtype_kept_when_not_float(dataset):
    import copy

    raw = copy.copy(dataset)
    raw.float_output = False
    va = dataset.index.valid_anchors
    idx = list(range(0, len(va), max(1, len(va) // 8)))[:8]
    batch = raw.__getitems__(idx)
    assert batch["anchor"].dtype == torch.uint16
    exp = np.array([dataset._exp_names[c] for c in dataset._row_exp[raw.index.anchor_rows[idx]]])
    assert batch["anchor"].shape == (len(idx), 3, 2, *PATCH)
    assert (batch["anchor"].float().sum(dim=(1, 2, 3, 4)) > 0).all()
    assert len(set(exp)) == 2


def test_batch_arrays_recycled_only_when_released(dataset):
    import copy

    fresh = copy.copy(dataset)
    fresh.buffer_pool_size = 0
    va = dataset.index.valid_anchors
    # exp_b first (all channels), then exp_a (mCherry missing) in the recycled arrays
    exp = va["experiment"].to_numpy()
    idx_b = list(np.flatnonzero(exp == "exp_b")[:4])
    idx_a = list(np.flatnonzero(exp == "exp_a")[:4])
    first = dataset.__getitems__(idx_b)
    ptr = first["anchor"].data_ptr()
    held = dataset.__getitems__(idx_a)
    assert held["anchor"].data_ptr() != ptr  # still referenced: not handed out again
    del first
    second = dataset.__getitems__(idx_a)
    ptrs = {second[k].data_ptr() for k in ("anchor", "positive", "negative")}
    assert ptr in ptrs  # released: refilled
    expected = fresh.__getitems__(idx_a)
    for key in ("anchor", "positive", "negative"):
        assert torch.equal(second[key], expected[key]), key
    assert torch.all(second["anchor"][:, 2] == 0)  # stale exp_b data was cleared


def test_batch_draws_seeded_per_batch_and_epoch(dataset):
    """Draws depend on seed, batch indices and epoch only: no per-process generator state."""
    import copy

    va = dataset.index.valid_anchors
    idx = list(range(min(16, len(va))))
    first = dataset.__getitems__(idx)
    dataset.__getitems__(idx[::-1])  # another batch in between changes nothing
    again = dataset.__getitems__(idx)
    for key in ("positive", "negative"):
        assert torch.equal(first[key], again[key]), key
    other = copy.copy(dataset)
    other.set_epoch(1)
    later = other.__getitems__(idx)
    assert not all(torch.equal(first[k], later[k]) for k in ("positive", "negative"))


def test_missing_norm_meta_neutral_only_when_asked():
    from viscy_data import NormStatsTable

    metas = [{"GFP": {"fov_statistics": {"mean": 5.0, "std": 2.0}}}, None]
    table = NormStatsTable(metas, ["GFP"], 3, ["e:A/1/0", "e:B/1/0"])
    assert table.gather(np.array([0, 1]), np.array([0, 0])) is None
    with pytest.raises(ValueError, match="FOV 'e:B/1/0' channel 'GFP'"):
        table.require(["GFP"])
    filled = NormStatsTable(metas, ["GFP"], 3, ["e:A/1/0", "e:B/1/0"], fill_missing=True)
    stats = filled.gather(np.array([0, 1]), np.array([0, 0]))["GFP"]["fov_statistics"]
    assert stats["mean"].tolist() == [5.0, 0.0]
    assert stats["std"].tolist() == [2.0, 1.0]
    filled.require(["GFP"])  # filled: nothing missing to report
