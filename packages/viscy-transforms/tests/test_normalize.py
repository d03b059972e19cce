"""Normalization from norm_meta, channel stacking and decollation."""

from __future__ import annotations

import pytest
import torch
from monai.data import decollate_batch
from torch.utils.data import default_collate

import viscy_transforms as vt

STATS = ("mean", "std", "median", "iqr", "min", "max", "p1", "p5", "p95", "p99")


def _level(offset: float) -> dict[str, float]:
    return {name: offset + i + 1.0 for i, name in enumerate(STATS)}


def _norm_meta(offset: float = 0.0) -> dict:
    return {
        "GFP": {
            "dataset_statistics": _level(offset),
            "fov_statistics": _level(offset + 10),
            "timepoint_statistics": _level(offset + 20),
        }
    }


@pytest.mark.parametrize("level", ["dataset_statistics", "fov_statistics", "timepoint_statistics"])
def test_normalize_with_python_floats(level):
    img = torch.rand(1, 4, 8, 8)
    meta = _norm_meta()
    out = vt.NormalizeSampled(["GFP"], level=level)({"GFP": img, "norm_meta": meta})
    stats = meta["GFP"][level]
    torch.testing.assert_close(out["GFP"], (img - stats["mean"]) / (stats["std"] + 1e-8))
    assert "norm_meta" in out


def test_normalize_collated_batch_uses_each_samples_statistics(device):
    samples = [
        {"GFP": torch.rand(1, 2, 4, 4), "norm_meta": _norm_meta(offset)} for offset in (0, 5, 9)
    ]
    batch = default_collate(samples)
    assert batch["norm_meta"]["GFP"]["fov_statistics"]["median"].shape == (3,)
    batch["GFP"] = batch["GFP"].to(device)
    out = vt.NormalizeSampled(
        ["GFP"], level="fov_statistics", subtrahend="median", divisor="iqr", remove_meta=True
    )(batch)
    assert "norm_meta" not in out
    assert out["GFP"].device == batch["GFP"].device
    for i, sample in enumerate(samples):
        stats = sample["norm_meta"]["GFP"]["fov_statistics"]
        expected = (sample["GFP"] - stats["median"]) / (stats["iqr"] + 1e-8)
        torch.testing.assert_close(out["GFP"][i].cpu(), expected)


def test_normalize_zero_dim_tensor_stats_keep_dtype():
    img = torch.rand(2, 1, 2, 4, 4, dtype=torch.float16)
    meta = {"GFP": {"dataset_statistics": {"mean": torch.tensor(0.5), "std": torch.tensor(2.0)}}}
    out = vt.NormalizeSampled(["GFP"], level="dataset_statistics")({"GFP": img, "norm_meta": meta})
    assert out["GFP"].dtype == torch.float16
    torch.testing.assert_close(out["GFP"], (img - 0.5) / 2.0)


def test_normalize_errors_name_what_is_missing():
    img = torch.rand(1, 2, 4, 4)
    transform = vt.NormalizeSampled(["GFP"], level="fov_statistics", subtrahend="median")
    with pytest.raises(KeyError, match="norm_meta"):
        transform({"GFP": img})
    with pytest.raises(KeyError, match="channel 'GFP'"):
        transform({"GFP": img, "norm_meta": {"Phase3D": {}}})
    with pytest.raises(KeyError, match="fov_statistics"):
        transform({"GFP": img, "norm_meta": {"GFP": {"dataset_statistics": _level(0)}}})
    with pytest.raises(KeyError, match="'median'"):
        transform({"GFP": img, "norm_meta": {"GFP": {"fov_statistics": {"mean": 1.0}}}})
    with pytest.raises(KeyError, match="Phase3D"):
        vt.NormalizeSampled(["Phase3D"], level="fov_statistics")({"GFP": img})
    with pytest.raises(ValueError, match="level"):
        vt.NormalizeSampled(["GFP"], level="well_statistics")
    bad = {"GFP": {"fov_statistics": {"mean": torch.zeros(3), "std": torch.ones(3)}}}
    with pytest.raises(ValueError, match="shape"):
        vt.NormalizeSampled(["GFP"], level="fov_statistics")(
            {"GFP": torch.rand(2, 1, 2, 4, 4), "norm_meta": bad}
        )


@pytest.mark.parametrize(
    ("data_range", "low", "high"),
    [("min_max", "min", "max"), ("p1_p99", "p1", "p99"), ("p5_p95", "p5", "p95")],
)
def test_min_max(data_range, low, high):
    samples = [{"GFP": torch.rand(1, 2, 4, 4), "norm_meta": _norm_meta(o)} for o in (0, 3)]
    batch = default_collate(samples)
    out = vt.MinMaxSampled(["GFP"], level="timepoint_statistics", data_range=data_range)(batch)
    for i, sample in enumerate(samples):
        stats = sample["norm_meta"]["GFP"]["timepoint_statistics"]
        # 0.1.0: clip to the statistics' range, then map that range to [-1, 1]
        clipped = sample["GFP"].clamp(stats[low], stats[high])
        expected = 2 * (clipped - stats[low]) / (stats[high] - stats[low] + 1e-8) - 1
        torch.testing.assert_close(out["GFP"][i], expected)
        assert out["GFP"][i].min() >= -1 and out["GFP"][i].max() <= 1
    with pytest.raises(ValueError, match="data_range"):
        vt.MinMaxSampled(["GFP"], level="fov_statistics", data_range="p2_p98")


def test_stack_channels_per_sample_and_batched():
    phase, gfp, rfp = (torch.full((1, 2, 4, 4), v) for v in (1.0, 2.0, 3.0))
    channel_map = {"source": ["Phase3D"], "target": ["GFP", "RFP"]}
    out = vt.StackChannelsd(channel_map)(
        {"Phase3D": phase, "GFP": gfp, "RFP": rfp, "norm_meta": {"GFP": None}}
    )
    assert set(out) == {"source", "target"}  # 0.1.0 keeps only the stacked keys
    assert out["source"].shape == (1, 2, 4, 4)
    assert out["target"].shape == (2, 2, 4, 4)
    assert out["target"][1].unique().item() == 3.0
    batched = vt.BatchedStackChannelsd(channel_map)(
        {
            k: v.expand(3, -1, -1, -1, -1)
            for k, v in (("Phase3D", phase), ("GFP", gfp), ("RFP", rfp))
        }
    )
    assert set(batched) == {"source", "target"}
    assert batched["target"].shape == (3, 2, 2, 4, 4)
    torch.testing.assert_close(batched["target"][:, 0], gfp.expand(3, -1, -1, -1, -1)[:, 0])
    torch.testing.assert_close(batched["target"][:, 1], rfp.expand(3, -1, -1, -1, -1)[:, 0])
    with pytest.raises(KeyError, match="RFP"):
        vt.StackChannelsd(channel_map)({"Phase3D": phase, "GFP": gfp})
    with pytest.raises(ValueError, match="channel_map"):
        vt.StackChannelsd({"source": "Phase3D"})


def test_decollate_matches_monai():
    batch = {"a": torch.rand(3, 1, 2, 2), "t": torch.tensor([0, 1, 2]), "name": ["x", "y", "z"]}
    out = vt.Decollate()(batch)
    expected = decollate_batch(batch)
    assert len(out) == 3
    for got, want in zip(out, expected, strict=True):
        torch.testing.assert_close(got["a"], want["a"])
        assert got["t"] == want["t"]
        assert got["name"] == want["name"]
    per_key = vt.Decollated(keys=["a"])(batch)
    assert len(per_key) == 3
