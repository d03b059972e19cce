"""Spatial transforms: affine, elastic, flips, zoom, Z shifts, pixel shuffling, Z reduction."""

from __future__ import annotations

import math

import pytest
import torch
from monai.transforms import Affine, Flip, Zoom

import viscy_transforms as vt


def _affine(batch: torch.Tensor, **kwargs) -> torch.Tensor:
    return vt.BatchedRandAffined(["a"], prob=1.0, **kwargs)({"a": batch})["a"]


def _monai_affine(img: torch.Tensor, **params) -> torch.Tensor:
    return torch.as_tensor(Affine(padding_mode="zeros", image_only=True, **params)(img))


class TestAffine:
    def test_integer_translation_shifts_content(self, batch):
        # 0.1.0 units: fractions of the size (16 pixels in Y and X)
        out = _affine(batch, translate_range=[(0, 0), (2 / 16, 2 / 16), (-1 / 16, -1 / 16)])
        expected = torch.zeros_like(batch)
        expected[..., 2:, :-1] = batch[..., :-2, 1:]
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)

    def test_quarter_turn_in_yx_is_rot90(self, batch):
        out = _affine(batch, rotate_range=[(math.pi / 2, math.pi / 2)])
        torch.testing.assert_close(out, torch.rot90(batch, 1, dims=(3, 4)), atol=1e-5, rtol=0)

    @pytest.mark.parametrize(
        ("ours", "monai"),
        [
            (
                {"translate_range": [(1.5 / 6, 1.5 / 6), (-2.5 / 16, -2.5 / 16), (3 / 16, 3 / 16)]},
                {"translate_params": (-1.5, 2.5, -3)},
            ),
            ({"rotate_range": [(0.4, 0.4)]}, {"rotate_params": (-0.4, 0.0, 0.0)}),
            ({"rotate_range": [0.0, (0.3, 0.3)]}, {"rotate_params": (0.0, 0.3, 0.0)}),
            (
                {"scale_range": [(1.0, 1.0), (1.5, 1.5), (0.8, 0.8)]},
                {"scale_params": (1.0, 1 / 1.5, 1 / 0.8)},
            ),
        ],
    )
    def test_matches_monai_affine_with_inverse_parameters(self, batch, ours, monai):
        # Our parameters move the content (scale 2 zooms in); MONAI's map output to input.
        out = _affine(batch, **ours)
        expected = torch.stack([_monai_affine(img, **monai) for img in batch])
        torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)

    def test_translate_is_a_fraction_of_the_size(self):
        # a coordinate image: the value at the centre is where it was sampled from
        x = torch.arange(33.0).expand(64, 1, 3, 33, 33).clone()
        transform = vt.BatchedRandAffined(["a"], prob=1.0, translate_range=[0, 0, 0.2])
        transform.set_random_state(0)
        shift = transform({"a": x})["a"][:, 0, 1, 16, 16] - 16
        assert shift.abs().max() <= 0.2 * 33 + 1e-4
        assert shift.abs().max() > 0.8 * 0.2 * 33  # voxels would give at most 0.2

    def test_shear_warns_about_0_1_0_degrees(self):
        with pytest.warns(UserWarning, match="degrees"):
            vt.BatchedRandAffined(["a"], shear_range=[0.1, 0.0, 0.0])

    @pytest.mark.filterwarnings("ignore:BatchedRandAffined shear_range")
    def test_z_shear_is_relative_to_aspect_ratio(self):
        img = torch.zeros(1, 1, 9, 33, 33)
        img[..., 16, :] = 1.0  # a line along X... tilt it along Y by Z
        absolute = _affine(img, shear_range=[0.0, 0.0, (0.25, 0.25)], scale_z_shear=False)
        relative = _affine(img, shear_range=[0.0, 0.0, (0.25, 0.25)], scale_z_shear=True)
        # Top slice (z offset +4): 1 voxel shift in voxel units, 4 * 33 / 9 ~ 14.7 relative.
        assert absolute[0, 0, 8, :, 16].argmax().item() == 17
        assert abs(relative[0, 0, 8, :, 16].argmax().item() - (16 + 0.25 * 4 * 33 / 9)) <= 1

    def test_safe_crop_keeps_padding_out_of_the_center(self):
        img = torch.ones(16, 1, 4, 32, 32)
        transform = vt.BatchedRandAffined(
            ["a"], prob=1.0, translate_range=[0, 12 / 32, 12 / 32], safe_crop_size=(4, 16, 16)
        )
        transform.set_random_state(0)
        out = transform({"a": img})["a"]
        center = out[..., 8:24, 8:24]
        assert center.min() > 0.99
        unrestricted = vt.BatchedRandAffined(["a"], prob=1.0, translate_range=[0, 0.375, 0.375])
        unrestricted.set_random_state(0)
        assert unrestricted({"a": img})["a"][..., 8:24, 8:24].min() < 0.5

    def test_integer_input_keeps_dtype(self):
        img = torch.randint(0, 1000, (2, 1, 4, 8, 8), dtype=torch.int32)
        out = _affine(img, translate_range=[0, (1 / 8, 1 / 8), 0])
        assert out.dtype == torch.int32
        assert torch.equal(out[..., 1:, :], img[..., :-1, :])

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"mode": "bicubic"}, "mode"),
            ({"padding_mode": "wrap"}, "padding_mode"),
            ({"scale_range": [(0.0, 1.0)] * 3}, "scale_range"),
            ({"rotate_range": [0.1, 0.1, 0.1, 0.1]}, "rotate_range"),
            ({"safe_crop_size": (4, 8)}, "safe_crop_size"),
            ({"scale_range": [(0.8, 1.2)] * 3, "isotropic_scale": True}, "isotropic_scale"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            vt.BatchedRandAffined(["a"], **kwargs)

    def test_safe_crop_larger_than_image(self, batch):
        transform = vt.BatchedRandAffined(["a"], prob=1.0, safe_crop_size=(8, 32, 32))
        with pytest.raises(ValueError, match="safe_crop_size"):
            transform({"a": batch})


def test_elastic_with_zero_magnitude_is_identity(batch):
    transform = vt.BatchedRand3DElasticd(["a"], sigma_range=(1, 2), magnitude_range=(0, 0), prob=1)
    torch.testing.assert_close(transform({"a": batch})["a"], batch, atol=1e-5, rtol=0)


def test_elastic_displacement_grows_with_magnitude(batch):
    def change(magnitude: float) -> float:
        transform = vt.BatchedRand3DElasticd(
            ["a"], sigma_range=(2, 2), magnitude_range=(magnitude, magnitude), prob=1
        )
        transform.set_random_state(0)
        return (transform({"a": batch})["a"] - batch).abs().mean().item()

    assert 0 < change(0.5) < change(4.0)


def _coordinates(shape: tuple[int, int, int]) -> torch.Tensor:
    axes = torch.meshgrid(*(torch.arange(float(s)) for s in shape), indexing="ij")
    return torch.stack(axes)[None]


def _autocorrelation(field: torch.Tensor, lag: int) -> float:
    shifted = field[..., lag:] * field[..., : field.shape[-1] - lag]
    return (shifted.mean() / (field * field).mean()).item()


def test_elastic_field_is_box_smoothed_normal_noise_in_voxels():
    # 0.1.0 behaviour: N(0, 1) noise averaged over a (2 int(3 sigma) + 1)**3 cube, times
    # magnitude voxels; on a coordinate image the output minus the input is the field
    coords = _coordinates((24, 24, 48))
    for sigma, width in ((0.5, 3), (1.0, 7)):
        transform = vt.BatchedRand3DElasticd(
            ["a"], sigma_range=(sigma, sigma), magnitude_range=(2, 2), prob=1
        )
        transform.set_random_state(0)
        field = transform({"a": coords.expand(6, -1, -1, -1, -1).clone()})["a"] - coords
        inner = field[..., 8:-8, 8:-8, 8:-8]
        assert inner.std().item() == pytest.approx(2 / width**1.5, rel=0.08)
        dx = inner[:, 2]
        lag = [_autocorrelation(dx, k) for k in (1, width)]
        assert lag[0] == pytest.approx(1 - 1 / width, abs=0.03)  # box autocorrelation
        assert abs(lag[1]) < 0.1


def test_elastic_reflects_about_the_edge_voxels():
    # align_corners=True: a sample pulled past x = 0 mirrors to |d|, never clamps to 0
    coords = _coordinates((6, 12, 12))
    transform = vt.BatchedRand3DElasticd(
        ["a"], sigma_range=(0.5, 0.5), magnitude_range=(3, 3), prob=1
    )
    transform.set_random_state(0)
    edge = transform({"a": coords.expand(16, -1, -1, -1, -1).clone()})["a"][:, 2, :, :, 0]
    assert (edge > 1e-6).float().mean() > 0.95


def test_flip_prob_one_matches_monai(batch):
    out = vt.BatchedRandFlip(spatial_axes=[0, 1, 2], prob=1.0)(batch)
    expected = torch.stack([torch.as_tensor(Flip(spatial_axis=[0, 1, 2])(img)) for img in batch])
    torch.testing.assert_close(out, expected)


def test_flip_draws_each_axis_per_sample(batch):
    transform = vt.BatchedRandFlip(spatial_axes=[1, 2], prob=0.5)
    transform.set_random_state(0)
    out = transform(batch)
    for i, (flip_y, flip_x) in enumerate(transform._flips.tolist()):
        dims = [d for d, f in ((3, flip_y), (4, flip_x)) if f]
        expected = batch[i : i + 1].flip(dims) if dims else batch[i : i + 1]
        torch.testing.assert_close(out[i : i + 1], expected)


def test_flip_rejects_bad_axis():
    with pytest.raises(ValueError, match="spatial_axes"):
        vt.BatchedRandFlip(spatial_axes=3)


@pytest.mark.parametrize("mode", ["nearest", "trilinear"])
def test_zoom_matches_monai(batch, mode):
    out = vt.BatchedZoomd(["a"], scale_factor=2.0, mode=mode)({"a": batch})["a"]
    expected = torch.stack(
        [torch.as_tensor(Zoom(zoom=2.0, mode=mode, keep_size=False)(img)) for img in batch]
    )
    assert out.shape == (4, 2, 12, 32, 32)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_zoom_anisotropic_and_bad_arguments(batch):
    out = vt.BatchedZoom(scale_factor=(1.0, 0.5, 0.5), mode="area")(batch)
    assert out.shape == (4, 2, 6, 8, 8)
    with pytest.raises(ValueError, match="scale_factor"):
        vt.BatchedZoom(scale_factor=0.0, mode="nearest")
    with pytest.raises(ValueError, match="mode"):
        vt.BatchedZoom(scale_factor=2.0, mode="cubic")


@pytest.mark.parametrize("mode", ["constant", "replicate", "circular"])
def test_zstack_shift_moves_whole_slices(batch, mode):
    transform = vt.BatchedRandZStackShiftd(["a"], max_shift=2, prob=1.0, mode=mode, cval=-1.0)
    transform.set_random_state(1)
    out = transform({"a": batch})["a"]
    depth = batch.shape[2]
    seen = set()
    for i in range(batch.shape[0]):
        matches = []
        for shift in range(-2, 3):
            source = torch.arange(depth) - shift
            if mode == "circular":
                expected = batch[i][:, source % depth]
            else:
                expected = batch[i][:, source.clamp(0, depth - 1)]
                if mode == "constant":
                    expected[:, (source < 0) | (source >= depth)] = -1.0
            if torch.equal(out[i], expected):
                matches.append(shift)
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 1


def _changed(transform, img: torch.Tensor) -> torch.Tensor:
    return (transform({"a": img})["a"] != img)[:, 0]


def test_pixel_shuffle_permutes_voxels_of_cubes():
    # 0.1.0 behaviour: int(shuffle_prob * volume / patch**3) cubes (at most 100) at random
    # places; every value stays in the sample and channel it came from
    img = torch.randperm(2 * 3 * 9 * 12 * 12).float().reshape(2, 3, 9, 12, 12)
    transform = vt.BatchedRandLocalPixelShufflingd(["a"], patch_size=3, shuffle_prob=0.3, prob=1)
    transform.set_random_state(0)
    out = transform({"a": img})["a"]
    assert not torch.equal(out, img)
    assert torch.equal(out.flatten(2).sort(-1).values, img.flatten(2).sort(-1).values)
    moved = out != img
    assert torch.equal(moved[:, 0], moved[:, 1])  # one permutation for all channels


def test_pixel_shuffle_cube_count_and_placement():
    def mean_changed(shape, patch, shuffle_prob, batch=64):
        img = torch.randperm(int(torch.tensor(shape).prod())).float().reshape(1, 1, *shape)
        transform = vt.BatchedRandLocalPixelShufflingd(
            ["a"], patch_size=patch, shuffle_prob=shuffle_prob, prob=1
        )
        transform.set_random_state(1)
        changed = _changed(transform, img.expand(batch, *img.shape[1:]).clone())
        return changed, changed.flatten(1).sum(1).float().mean().item()

    # a cube of 27 voxels leaves 1 in 27 in place: 26 changed per cube in a large volume
    assert mean_changed((9, 150, 150), 3, 0.0011)[1] / 26 == pytest.approx(8, abs=0.3)
    assert mean_changed((9, 150, 150), 3, 0.05)[1] / 26 == pytest.approx(100, abs=3)  # cap
    assert mean_changed((3, 6, 6), 3, 0.1)[1] == 0  # int(0.4) cubes
    # one 1 x 3 x 3 cube in a single slice, anywhere its 3 x 3 fits
    changed, mean = mean_changed((1, 6, 6), 3, 1.0, batch=2000)
    assert mean == pytest.approx(8, abs=0.2)
    column_hit = changed.any(1).any(1).float().mean(0)
    torch.testing.assert_close(column_hit, torch.tensor([1, 2, 3, 3, 2, 1]) / 4, atol=0.05, rtol=0)


def test_z_reduction_per_key(batch):
    transform = vt.BatchedChannelWiseZReductiond(["Phase3D", "GFP"], labelfree_keys=["Phase3D"])
    out = transform({"Phase3D": batch, "GFP": batch})
    torch.testing.assert_close(out["Phase3D"], batch[:, :, 3:4])
    torch.testing.assert_close(out["GFP"], batch.amax(dim=2, keepdim=True))
    mean = vt.BatchedChannelWiseZReduction("mean")(batch)
    torch.testing.assert_close(mean, batch.mean(dim=2, keepdim=True))
    with pytest.raises(ValueError, match="strategy"):
        vt.BatchedChannelWiseZReduction("median")
