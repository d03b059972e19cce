"""Batched crops against MONAI's per-sample crops, and their argument checks."""

from __future__ import annotations

import pytest
import torch
from monai.transforms import CenterSpatialCrop

import viscy_transforms as vt


@pytest.mark.parametrize("roi", [(4, 8, 8), (5, 9, 16), 6, (-1, 7, 7)])
def test_center_crop_matches_monai(batch, roi):
    out = vt.BatchedCenterSpatialCropd(["a"], roi_size=roi)({"a": batch})["a"]
    expected = torch.stack([torch.as_tensor(CenterSpatialCrop(roi)(img)) for img in batch])
    torch.testing.assert_close(out, expected)


def test_center_crop_larger_than_image_is_an_error(batch):
    with pytest.raises(ValueError, match=r"roi_size \(8, 8, 8\) is larger than .*\(6, 16, 16\)"):
        vt.BatchedCenterSpatialCrop((8, 8, 8))(batch)


def test_crop_needs_a_batch():
    with pytest.raises(ValueError, match=r"\(B, C, Z, Y, X\)"):
        vt.BatchedCenterSpatialCrop((2, 2, 2))(torch.zeros(1, 4, 4, 4))


def test_divisible_crop(batch):
    out = vt.BatchedDivisibleCropd(["a"], k=(4, 5, 16))({"a": batch})["a"]
    assert out.shape == (4, 2, 4, 15, 16)
    torch.testing.assert_close(out, batch[:, :, 1:5, 1:16, :])  # MONAI centering
    with pytest.raises(ValueError, match="smaller than k"):
        vt.BatchedDivisibleCropd(["a"], k=32)({"a": batch})
    with pytest.raises(ValueError, match="k must be positive"):
        vt.BatchedDivisibleCropd(["a"], k=0)


def test_rand_spatial_crop_center_mode_matches_center_crop(batch):
    out = vt.BatchedRandSpatialCrop((4, 8, 8), random_center=False)(batch)
    torch.testing.assert_close(out, vt.BatchedCenterSpatialCrop((4, 8, 8))(batch))


def test_rand_spatial_crop_windows_come_from_each_sample(batch):
    cropper = vt.BatchedRandSpatialCrop((3, 5, 5))
    cropper.set_random_state(0)
    out = cropper(batch)
    starts = cropper._starts.tolist()
    assert len({tuple(s) for s in starts}) > 1
    for i, (z, y, x) in enumerate(starts):
        torch.testing.assert_close(out[i], batch[i, :, z : z + 3, y : y + 5, x : x + 5])


def test_rand_spatial_crop_random_size_is_shared_by_the_batch(batch):
    cropper = vt.BatchedRandSpatialCrop((2, 4, 4), max_roi_size=(4, 12, 12), random_size=True)
    sizes = {tuple(cropper(batch).shape[2:]) for _ in range(5)}
    assert len(sizes) > 1
    assert all(2 <= z <= 4 and 4 <= y <= 12 and 4 <= x <= 12 for z, y, x in sizes)
    with pytest.raises(ValueError, match="max_roi_size"):
        vt.BatchedRandSpatialCrop((4, 8, 8), max_roi_size=(2, 8, 8), random_size=True)(batch)


def test_rand_spatial_cropd_larger_than_image(batch):
    with pytest.raises(ValueError, match="roi_size"):
        vt.BatchedRandSpatialCropd(["a"], roi_size=(7, 8, 8))({"a": batch})


def test_weighted_crop_follows_the_weights(batch):
    weight = torch.zeros(4, 1, 6, 16, 16)
    peaks = [(2, 4, 5), (3, 10, 11), (2, 8, 8), (4, 12, 4)]
    for i, (z, y, x) in enumerate(peaks):
        weight[i, 0, z, y, x] = 1.0
    out = vt.BatchedRandWeightedCropd(["a", "w"], w_key="w", spatial_size=(3, 5, 5))(
        {"a": batch, "w": weight}
    )
    for i in range(4):
        # the only weighted voxel is the center of the crop
        assert out["w"][i, 0, 1, 2, 2] == 1.0
        z, y, x = (p - h for p, h in zip(peaks[i], (1, 2, 2), strict=True))
        torch.testing.assert_close(out["a"][i], batch[i, :, z : z + 3, y : y + 5, x : x + 5])


def test_weighted_crop_errors(batch):
    transform = vt.BatchedRandWeightedCropd(["a"], w_key="w", spatial_size=(3, 5, 5))
    with pytest.raises(KeyError, match="weight key 'w'"):
        transform({"a": batch})
    big = vt.BatchedRandWeightedCropd(["a"], w_key="a", spatial_size=(3, 32, 5))
    with pytest.raises(ValueError, match="spatial_size"):
        big({"a": batch})


def test_tiled_crop_samples():
    img = torch.arange(2 * 4 * 9 * 8, dtype=torch.float32).reshape(2, 4, 9, 8)
    transform = vt.TiledSpatialCropSamplesd(["a"], roi_size=(2, 4, 4), num_samples=3)
    samples = transform({"a": img, "index": 7})
    assert len(samples) == 3
    assert all(s["a"].shape == (2, 2, 4, 4) and s["index"] == 7 for s in samples)
    # grid: 2 x 2 x 2 tiles, Y offset 0 (9 // 4 = 2 tiles, margin 1 -> offset 0)
    torch.testing.assert_close(samples[0]["a"], img[:, 0:2, 0:4, 0:4])
    torch.testing.assert_close(samples[1]["a"], img[:, 0:2, 0:4, 4:8])
    torch.testing.assert_close(samples[2]["a"], img[:, 0:2, 4:8, 0:4])
    with pytest.raises(ValueError, match="only 8 fit"):
        vt.TiledSpatialCropSamplesd(["a"], roi_size=(2, 4, 4), num_samples=9)({"a": img})


def test_tiled_crop_samples_of_a_batch_cut_the_last_three_axes():
    img = torch.arange(3 * 2 * 4 * 9 * 8, dtype=torch.float32).reshape(3, 2, 4, 9, 8)
    transform = vt.TiledSpatialCropSamplesd(["a"], roi_size=(2, 4, 4), num_samples=2)
    samples = transform({"a": img})
    torch.testing.assert_close(samples[1]["a"], img[..., 0:2, 0:4, 4:8])
    with pytest.raises(ValueError, match="got shape"):
        transform({"a": img[0, 0]})
