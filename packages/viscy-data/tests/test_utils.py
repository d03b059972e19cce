"""Normalization metadata, channel lookups and collation helpers."""

from __future__ import annotations

import pytest
import torch
from iohub.ngff import open_ome_zarr

from viscy_data import HCSStackIndex, read_norm_meta
from viscy_data._utils import (
    BatchedCenterSpatialCropd,
    _search_int_in_str,
    channel_indices,
    collate_samples,
    ensure_channel_list,
    normalization_channels,
    resolve_norm_meta,
)


def test_read_norm_meta(hcs_plate):
    with open_ome_zarr(hcs_plate.path, mode="r") as plate:
        pos = plate["A/1/1"]
        data = pos["0"][2, 1]
        meta = read_norm_meta(pos)
    assert set(meta) == {"Phase3D", "GFP"}
    gfp = meta["GFP"]
    assert set(gfp) == {"dataset_statistics", "fov_statistics", "timepoint_statistics"}
    assert set(gfp["timepoint_statistics"]) == {"0", "1", "2"}
    assert isinstance(gfp["fov_statistics"]["mean"], float)
    assert gfp["timepoint_statistics"]["2"]["mean"] == pytest.approx(float(data.mean()))
    resolved = resolve_norm_meta(meta, 2)
    assert resolved["GFP"]["timepoint_statistics"] == gfp["timepoint_statistics"]["2"]
    assert resolved["GFP"]["fov_statistics"] == gfp["fov_statistics"]
    assert set(meta["GFP"]["timepoint_statistics"]) == {"0", "1", "2"}  # input untouched
    assert resolve_norm_meta(None, 0) is None


def test_read_norm_meta_absent(sharded_plate):
    with open_ome_zarr(sharded_plate.path, mode="r") as plate:
        assert read_norm_meta(plate["A/1/0"]) is None


def test_channel_helpers():
    assert ensure_channel_list("GFP") == ["GFP"]
    assert ensure_channel_list(("a", "b")) == ["a", "b"]
    assert ensure_channel_list(None) == []
    with pytest.raises(TypeError):
        ensure_channel_list(["a", 3])
    assert channel_indices(["a", "b", "c"], ["c", "a"]) == [2, 0]
    with pytest.raises(ValueError, match=r"\['x'\].*plate.zarr.*\['a', 'b'\]"):
        channel_indices(["a", "b"], ["a", "x"], where="plate.zarr")
    assert _search_int_in_str(r"\d{3}", "img_042.tif") == "042"


class _FakeNormalize:
    def __init__(self, keys, level):
        self.keys = keys
        self.level = level


class _FakeCompose:
    def __init__(self, transforms):
        self.transforms = transforms


def test_normalization_channels_found_in_compose():
    transforms = [
        _FakeCompose([_FakeNormalize(["GFP"], "fov_statistics")]),
        _FakeNormalize("Phase3D", "dataset_statistics"),
        lambda x: x,
    ]
    assert normalization_channels(transforms) == ["GFP", "Phase3D"]
    assert normalization_channels(None) == []


def test_collate_keeps_index_and_norm_meta():
    def sample(name, t, z):
        return {
            "index": HCSStackIndex(name, t, z),
            "source": torch.full((1, 2, 4, 4), float(t)),
            "target": torch.zeros(1, 1, 4, 4),
            "norm_meta": {"GFP": {"fov_statistics": {"mean": float(t), "std": 1.0}}},
        }

    # second item carries two crops (as a list), like multi-sample augmentations
    batch = collate_samples([sample("A/1/0", 0, 1), [sample("B/1/1", 2, 3), sample("X", 5, 0)]])
    assert batch["source"].shape == (3, 1, 2, 4, 4)
    assert isinstance(batch["index"], HCSStackIndex)
    assert batch["index"].image == ["A/1/0", "B/1/1", "X"]
    assert batch["index"].time.tolist() == [0, 2, 5]
    assert batch["index"].z.tolist() == [1, 3, 0]
    assert batch["norm_meta"]["GFP"]["fov_statistics"]["mean"].tolist() == [0.0, 2.0, 5.0]
    with pytest.raises(ValueError, match="empty"):
        collate_samples([])


def test_batched_center_crop():
    x = torch.arange(2 * 1 * 3 * 8 * 10).reshape(2, 1, 3, 8, 10)
    out = BatchedCenterSpatialCropd(keys=["anchor"], roi_size=(-1, 4, 6))({"anchor": x, "k": 1})
    assert out["anchor"].shape == (2, 1, 3, 4, 6)
    assert torch.equal(out["anchor"], x[..., 2:6, 2:8])
    assert out["k"] == 1
    with pytest.raises(KeyError):
        BatchedCenterSpatialCropd(keys="missing", roi_size=(2, 2))({"anchor": x})


def test_collate_views_of_one_batch_without_copy():
    batch = torch.arange(4 * 2 * 3 * 5).reshape(4, 2, 3, 5)
    samples = [{"source": batch[i, :1], "target": batch[i, 1:]} for i in range(4)]
    out = collate_samples(samples)
    assert torch.equal(out["source"], batch[:, :1])
    assert torch.equal(out["target"], batch[:, 1:])
    assert out["source"].untyped_storage().data_ptr() == batch.untyped_storage().data_ptr()
    # views in another order are copied, not misread
    shuffled = collate_samples([samples[1], samples[0]])
    assert torch.equal(shuffled["source"], batch[[1, 0], :1])


def test_collated_norm_meta_is_float32():
    # 0.1.0 (checked against the release): batch statistics are float32 tensors of shape (B,)
    stats = [{"GFP": {"fov_statistics": {"mean": 1.5 + i, "std": 2.0}}} for i in range(3)]
    out = collate_samples([{"x": torch.zeros(1), "norm_meta": s} for s in stats])
    mean = out["norm_meta"]["GFP"]["fov_statistics"]["mean"]
    assert mean.dtype == torch.float32 and mean.tolist() == [1.5, 2.5, 3.5]


def test_unknown_stage_error_is_both_0_1_0_types():
    from viscy_data._utils import UnknownStageError, check_stage

    check_stage("fit", "DM", ("fit", "predict"))
    with pytest.raises(NotImplementedError, match="DM: unknown stage 'bogus'"):
        check_stage("bogus", "DM", ("fit", "predict"))
    assert issubclass(UnknownStageError, ValueError)
