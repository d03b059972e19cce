"""Intensity transforms: agreement with MONAI per sample, and their own semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import (
    AdjustContrast,
    GaussianSmooth,
    RandScaleIntensity,
    ScaleIntensityRangePercentiles,
)

import viscy_transforms as vt
from viscy_transforms._percentile_scale import batched_quantile


def _per_sample(transform, img: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.as_tensor(transform(sample)) for sample in img])


@pytest.mark.parametrize("invert_image", [False, True])
@pytest.mark.parametrize("retain_stats", [False, True])
def test_adjust_contrast_matches_monai(batch, invert_image, retain_stats):
    transform = vt.BatchedRandAdjustContrast(
        gamma=(1.7, 1.7), prob=1.0, invert_image=invert_image, retain_stats=retain_stats
    )
    expected = _per_sample(
        AdjustContrast(1.7, invert_image=invert_image, retain_stats=retain_stats), batch
    )
    torch.testing.assert_close(transform(batch), expected, rtol=1e-4, atol=1e-5)


def test_adjust_contrast_number_gamma_and_bad_gamma():
    # 0.1.0: a number is a fixed gamma
    assert vt.BatchedRandAdjustContrast(gamma=2.0).gamma == (2.0, 2.0)
    assert vt.BatchedRandAdjustContrast(gamma=0.3).gamma == (0.3, 0.3)
    x = torch.rand(4, 1, 2, 4, 4)
    out = vt.BatchedRandAdjustContrast(gamma=2.0, prob=1.0)(x)
    lo = x.flatten(1).amin(1).view(-1, 1, 1, 1, 1)
    rng = x.flatten(1).amax(1).view(-1, 1, 1, 1, 1) - lo
    torch.testing.assert_close(out, ((x - lo) / rng) ** 2.0 * rng + lo, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="gamma"):
        vt.BatchedRandAdjustContrast(gamma=-1.0)


@pytest.mark.parametrize("channel_wise", [False, True])
def test_scale_intensity_matches_monai(batch, channel_wise):
    transform = vt.BatchedRandScaleIntensity(
        factors=(0.3, 0.3), prob=1.0, channel_wise=channel_wise
    )
    expected = _per_sample(RandScaleIntensity(factors=(0.3, 0.3), prob=1.0), batch)
    torch.testing.assert_close(transform(batch), expected)


def test_scale_intensity_channel_wise_draws_per_channel(batch):
    out = vt.BatchedRandScaleIntensity(factors=0.5, prob=1.0, channel_wise=True)(batch)
    ratios = (out / batch).flatten(2).mean(-1)  # (B, C)
    assert not torch.allclose(ratios[:, 0], ratios[:, 1])


def test_gaussian_smooth_matches_monai_with_named_axes(batch):
    transform = vt.BatchedRandGaussianSmooth(sigma_x=1.5, sigma_y=1.0, sigma_z=0.5, prob=1.0)
    # MONAI's sigma tuple is in array order (Z, Y, X) here.
    expected = _per_sample(GaussianSmooth(sigma=(0.5, 1.0, 1.5)), batch)
    torch.testing.assert_close(transform(batch), expected, rtol=1e-4, atol=1e-5)


def test_gaussian_smooth_per_sample_sigmas_match_monai(batch):
    transform = vt.BatchedRandGaussianSmooth(sigma_x=(0.5, 2.5), sigma_y=(0.5, 2.5), prob=1.0)
    transform.set_random_state(0)
    out = transform(batch)
    for i, (sz, sy, sx) in enumerate(transform._sigmas.tolist()):
        expected = GaussianSmooth(sigma=(sz, sy, sx))(batch[i])
        torch.testing.assert_close(out[i], torch.as_tensor(expected), rtol=1e-4, atol=1e-5)


def test_gaussian_smooth_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sigma"):
        vt.BatchedRandGaussianSmooth(sigma_x=(-1.0, 1.0))
    with pytest.raises(ValueError, match="border_type"):
        vt.BatchedRandGaussianSmooth(border_type="mirror")


@pytest.mark.parametrize(
    ("lower", "upper", "b_min", "b_max", "clip", "relative", "channel_wise"),
    [
        (1, 99, 0.0, 1.0, False, False, False),
        (5, 95, -1.0, 1.0, True, False, True),
        (10, 90, 0.0, 200.0, False, True, False),
        (2, 98, None, None, False, False, True),
    ],
)
def test_percentile_scaling_matches_monai(
    batch, lower, upper, b_min, b_max, clip, relative, channel_wise
):
    args = (lower, upper, b_min, b_max, clip, relative, channel_wise)
    out = vt.BatchedScaleIntensityRangePercentiles(*args)(batch)
    expected = _per_sample(ScaleIntensityRangePercentiles(*args), batch)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_percentile_scaling_constant_sample_and_integer_input():
    img = torch.zeros(2, 1, 2, 4, 4, dtype=torch.int32)
    img[1] = torch.arange(32, dtype=torch.int32).reshape(1, 2, 4, 4)
    out = vt.BatchedScaleIntensityRangePercentilesd(["a"], 0, 100, 0.0, 1.0)({"a": img})["a"]
    assert out.dtype == torch.float32
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    assert out[1].min() == 0
    assert out[1].max() == 1


def test_batched_quantile_matches_numpy():
    values = torch.randn(3, 1001, dtype=torch.float64)
    for q in (0.0, 0.013, 0.5, 0.99, 1.0):
        expected = np.percentile(values.numpy(), q * 100, axis=1)
        np.testing.assert_allclose(batched_quantile(values, q).numpy(), expected, rtol=1e-12)


def test_histogram_shift_adds_the_drawn_offset(batch):
    out = vt.BatchedRandHistogramShiftd(["a"], shift_range=(0.25, 0.25), prob=1.0)({"a": batch})
    torch.testing.assert_close(out["a"], batch + 0.25)


def test_invert_intensity_negates(batch):
    torch.testing.assert_close(
        vt.BatchedRandInvertIntensityd(["a"], prob=1.0)({"a": batch})["a"], -batch
    )
    torch.testing.assert_close(
        vt.RandInvertIntensityd(["a"], prob=1.0)({"a": batch[0]})["a"], -batch[0]
    )


def test_sharpen_is_a_3d_laplacian_with_zero_padding():
    # 0.1.0 behaviour: x + alpha * (6 x - face neighbours), zeros outside the volume
    alpha = 0.5
    impulse = torch.zeros(1, 1, 3, 5, 5)
    impulse[0, 0, 1, 2, 2] = 1.0
    sharpen = vt.BatchedRandSharpend(["a"], alpha_range=(alpha, alpha), prob=1.0)
    out = sharpen({"a": impulse})["a"][0, 0]
    expected = torch.zeros(3, 5, 5)
    expected[1, 2, 2] = 1 + 6 * alpha
    for z, y, x in ((0, 2, 2), (2, 2, 2), (1, 1, 2), (1, 3, 2), (1, 2, 1), (1, 2, 3)):
        expected[z, y, x] = -alpha
    torch.testing.assert_close(out, expected)
    # a constant image brightens by alpha per missing neighbour at the faces
    flat = sharpen({"a": torch.full((1, 1, 3, 5, 5), 2.0)})["a"][0, 0]
    assert flat[1, 2, 2] == pytest.approx(2.0)
    assert flat[1, 0, 2] == pytest.approx(2.0 * (1 + alpha))
    assert flat[0, 0, 0] == pytest.approx(2.0 * (1 + 3 * alpha))


def test_sharpen_draws_alpha_uniformly_per_sample_and_channels_independently():
    impulse = torch.zeros(4000, 2, 3, 5, 5)
    impulse[:, 0, 1, 2, 2] = 1.0
    sharpen = vt.BatchedRandSharpend(["a"], alpha_range=(0.1, 0.9), prob=0.8)
    sharpen.set_random_state(0)
    out = sharpen({"a": impulse})["a"]
    alphas = (out[:, 0, 1, 2, 2] - 1) / 6
    applied = alphas.abs() > 1e-6
    assert 0.77 < applied.float().mean() < 0.83
    drawn = alphas[applied]
    assert drawn.min() >= 0.1 and drawn.max() <= 0.9
    assert drawn.mean() == pytest.approx(0.5, abs=0.02)
    assert torch.equal(out[:, 1], torch.zeros_like(out[:, 1]))  # channel 1 was all zeros


class TestNoise:
    def test_batched_noise_has_the_requested_statistics(self):
        img = torch.zeros(4, 1, 8, 64, 64)
        out = vt.BatchedRandGaussianNoise(prob=1.0, mean=0.5, std=0.2, sample_std=False)(img)
        flat = out.flatten(1)
        torch.testing.assert_close(flat.mean(1), torch.full((4,), 0.5), atol=0.01, rtol=0)
        torch.testing.assert_close(flat.std(1), torch.full((4,), 0.2), atol=0.01, rtol=0)

    def test_batched_noise_samples_std_per_sample(self):
        img = torch.zeros(8, 1, 4, 32, 32)
        out = vt.BatchedRandGaussianNoise(prob=1.0, std=1.0, sample_std=True)(img)
        stds = out.flatten(1).std(1)
        assert stds.max() - stds.min() > 0.1
        assert (stds < 1.05).all()

    def test_noise_tensor_matches_monai_semantics(self):
        transform = vt.RandGaussianNoiseTensor(prob=1.0, mean=0.0, std=0.3, sample_std=False)
        transform.set_random_state(1)
        out = transform(torch.zeros(1, 8, 32, 32))
        assert abs(out.std().item() - 0.3) < 0.02
        again = vt.RandGaussianNoiseTensor(prob=1.0, std=0.3, sample_std=False)
        torch.testing.assert_close(again.set_random_state(1)(torch.zeros(1, 8, 32, 32)), out)

    def test_noise_tensor_dict_shares_noise_and_skips_when_prob_zero(self):
        img = torch.zeros(1, 4, 8, 8)
        out = vt.RandGaussianNoiseTensord(["a", "b"], prob=1.0, std=0.5)({"a": img, "b": img})
        torch.testing.assert_close(out["a"], out["b"])
        assert out["a"].abs().sum() > 0
        same = vt.RandGaussianNoiseTensord(["a"], prob=0.0)({"a": img})["a"]
        assert torch.equal(same, img)

    def test_integer_input_becomes_float(self):
        img = torch.zeros(2, 1, 2, 4, 4, dtype=torch.uint16)
        out = vt.BatchedRandGaussianNoise(prob=1.0)(img)
        assert out.dtype == torch.float32


@pytest.mark.parametrize(
    "build",
    [
        lambda keys: vt.BatchedRandSharpend(keys, prob=1.0),
        lambda keys: vt.BatchedRandLocalPixelShufflingd(keys, prob=1.0),
    ],
)
def test_several_keys_warn_that_they_share_one_draw(build):
    # 0.1.0 drew these per key; a two-key config would silently change meaning
    with pytest.warns(UserWarning, match="share one random draw"):
        build(["source", "target"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build(["source"])
