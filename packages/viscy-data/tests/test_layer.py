"""The public single-cell layer and the device-transfer skeleton (no plates needed)."""

from __future__ import annotations

import math
import multiprocessing
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from viscy_data import (
    ChannelWiseBatchTransform,
    DeviceTransformMixin,
    NormStatsTable,
    apply_channel_wise,
    batch_rng,
    spatial_margin,
    trainer_stage,
)
from viscy_data.hcs import required_yx

# ---------------------------------------------------------------------- per-batch RNG


def _draws(seed: int, indices: list[int], epoch: int) -> list[float]:
    return batch_rng(seed, indices, epoch=epoch).random(4).tolist()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_batch_rng_identical_in_worker_processes(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} on this platform")
    args = [(7, [3, 1, 2], 0, 0), (7, [3, 1, 2], 0, 1), (7, [4, 5, 6], 0, 0)]
    here = [_draws(seed, idx, epoch) for seed, idx, _, epoch in args]
    # the generators are derived in the worker (batch_rng is importable there) and sent back
    with multiprocessing.get_context(method).Pool(1) as pool:
        there = [g.random(4).tolist() for g in pool.starmap(batch_rng, args, chunksize=3)]
    assert there == here
    # different batches (so different workers) and epochs draw differently
    assert here[0] != here[1] and here[0] != here[2]
    assert _draws(8, [3, 1, 2], 0) != here[0]  # seedable


# ---------------------------------------------------------------------- statistics


def _meta(mean: float, t_means: dict[int, float] | None = None) -> dict:
    entry = {
        "dataset_statistics": {"mean": 1.0, "std": 2.0},
        "fov_statistics": {"mean": mean, "std": 3.0, "median": mean},
    }
    if t_means is not None:
        by_t = {str(t): {"mean": m, "std": 1.0} for t, m in t_means.items()}
        entry["timepoint_statistics"] = by_t
    return entry


def test_norm_table_gathers_per_sample_fov_and_t():
    metas = [
        {"GFP": _meta(10.0, {0: 5.0, 1: 6.0}), "Phase": _meta(0.5, {0: 0.1, 1: 0.2})},
        {"GFP": {**_meta(20.0, {0: 7.0}), "fov_statistics": {"mean": 20.0, "std": 4.0}}},
    ]
    table = NormStatsTable(
        metas, ["GFP", "Phase"], [2, 1], ["A/1/0", "A/1/1"], absent_channels=[set(), {"Phase"}]
    )
    assert table.complete
    out = table.gather(np.array([1, 0, 0]), np.array([0, 1, 0]))
    gfp = out["GFP"]
    assert gfp["fov_statistics"]["mean"].tolist() == [20.0, 10.0, 10.0]
    assert sorted(gfp["fov_statistics"]) == ["mean", "std"]  # stats every FOV has
    assert gfp["timepoint_statistics"]["mean"].tolist() == [7.0, 6.0, 5.0]
    # the second FOV has no Phase channel (zeros): neutral statistics there
    assert out["Phase"]["fov_statistics"]["std"].tolist() == [1.0, 3.0, 3.0]
    assert out["Phase"]["timepoint_statistics"]["mean"].tolist() == pytest.approx([0.0, 0.2, 0.1])


def test_norm_table_missing_metadata_is_reported_not_filled():
    metas = [{"GFP": _meta(10.0)}, None]
    table = NormStatsTable(metas, ["GFP"], 3, ["A/1/0", "B/2/0"])
    assert not table.complete
    assert table.gather(np.array([0]), np.array([0])) is None

    class NormalizeLike:
        keys = ["GFP"]
        level = "fov_statistics"

    with pytest.raises(ValueError, match=r"FOV 'B/2/0' channel 'GFP'.*NormalizeLike"):
        table.require_for([NormalizeLike()])
    table.require_for([])  # no normalization: nothing needed
    filled = NormStatsTable(metas, ["GFP"], 3, ["A/1/0", "B/2/0"], fill_missing=True)
    stats = filled.gather(np.array([0, 1]), np.array([0, 0]))["GFP"]["fov_statistics"]
    assert stats["mean"].tolist() == [10.0, 0.0] and stats["std"].tolist() == [3.0, 1.0]
    filled.require_for([NormalizeLike()])  # neutral values were asked for


def test_norm_table_missing_timepoint_is_nan():
    table = NormStatsTable([{"GFP": _meta(1.0, {0: 2.0})}], ["GFP"], 2)
    t_mean = table.gather(np.array([0, 0]), np.array([0, 1]))["GFP"]["timepoint_statistics"]
    assert t_mean["mean"][0] == 2.0 and math.isnan(t_mean["mean"][1])


# ---------------------------------------------------------------------- channel-wise ops


def test_apply_channel_wise_on_tensors_of_different_depth():
    seen = []

    def double_gfp(sample):
        seen.append(sorted(sample))
        return {**sample, "GFP": sample["GFP"] * 2}

    source, target = torch.ones(2, 2, 3, 4, 4), torch.ones(2, 1, 1, 4, 4)
    out_source, out_target = apply_channel_wise(
        [double_gfp], [["Phase", "GFP"], ["Nuclei"]], [source, target], {"stats": 1}
    )
    assert seen == [["GFP", "Nuclei", "Phase", "norm_meta"]]
    assert out_source[:, 1].eq(2).all() and out_source[:, 0].eq(1).all()
    assert out_target.shape == target.shape
    with pytest.raises(ValueError, match="3 channels but 2 names"):
        apply_channel_wise([], ["a", "b"], torch.ones(1, 3, 2, 2))


def test_channel_wise_batch_transform_pops_meta_floats_and_crops():
    transform = ChannelWiseBatchTransform([], ["a"], ("anchor", "negative"), (2, 2))
    batch = {"anchor": torch.arange(16, dtype=torch.int16).view(1, 1, 4, 4), "anchor_norm_meta": {}}
    out = transform(batch)
    assert "anchor_norm_meta" not in out
    assert out["anchor"].dtype == torch.float32
    assert out["anchor"].flatten().tolist() == [5.0, 6.0, 9.0, 10.0]


# ---------------------------------------------------------------------- skeleton


class _Module(DeviceTransformMixin):
    def __init__(self, augment_validation: bool) -> None:
        self.augment_validation = augment_validation
        self.trainer = None
        self.built: list = []

    def _build_device_transform(self, stage):
        self.built.append(stage)
        augment = self._augmenting(stage)
        return lambda batch: {**batch, "stage": stage, "augmented": augment}


@pytest.mark.parametrize(
    ("flags", "stage", "augmented"),
    [
        ({"training": True}, "train", True),
        ({"validating": True}, "val", True),
        ({"sanity_checking": True, "validating": True}, "sanity", False),
        ({"predicting": True}, "predict", False),
        ({"testing": True}, "test", False),
        ({}, None, False),
    ],
)
def test_skeleton_stage_and_augmenting(flags, stage, augmented):
    module = _Module(augment_validation=True)
    module.trainer = SimpleNamespace(**flags)
    assert trainer_stage(module.trainer) == stage
    out = module.on_after_batch_transfer({"x": 1}, 0)
    assert (out["stage"], out["augmented"]) == (stage, augmented)
    assert module.on_after_batch_transfer(torch.ones(2), 0).shape == (2,)  # example input


def test_skeleton_composes_each_stage_once():
    module = _Module(augment_validation=False)
    module._compose_device_transforms()
    module.trainer = SimpleNamespace(validating=True)
    for _ in range(3):
        assert module.on_after_batch_transfer({}, 0)["augmented"] is False
    assert sorted(map(str, module.built)) == sorted(
        map(str, [None, "train", "val", "sanity", "test", "predict"])
    )


# ---------------------------------------------------------------------- read margin


def test_read_margin_from_declared_property_not_class_name():
    class Warp:  # declares its margin
        spatial_margin = 1.5

    class RandomAffineLookalike:  # a spatial-sounding name declares nothing
        pass

    assert spatial_margin(Warp()) == 1.5
    assert spatial_margin(RandomAffineLookalike()) == 1.0
    assert required_yx([Warp()], (32, 32)) == (48, 48)
    assert required_yx([RandomAffineLookalike()], (32, 32)) == (32, 32)
