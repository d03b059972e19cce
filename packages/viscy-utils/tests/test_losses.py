"""MixedLoss and SpotlightLoss: behaviour derived from their definitions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from viscy_utils.losses import MixedLoss, SpotlightLoss, ms_ssim_25d
from viscy_utils.losses.spotlight import otsu_threshold


@pytest.fixture(scope="module")
def stacks():
    gen = torch.Generator().manual_seed(0)
    target = F.avg_pool3d(torch.rand(2, 1, 3, 176, 176, generator=gen), (1, 5, 5), 1, (0, 2, 2))
    noisy = target + 0.05 * torch.randn(target.shape, generator=gen)
    return target, noisy


def test_mixed_loss_is_the_weighted_sum_of_its_terms(stacks):
    target, noisy = stacks
    l1 = F.l1_loss(noisy, target)
    l2 = F.mse_loss(noisy, target)
    dssim = 1 - ms_ssim_25d(noisy, target)
    assert torch.isclose(MixedLoss(1, 0, 0)(noisy, target), l1)
    assert torch.isclose(MixedLoss(0, 1, 0)(noisy, target), l2)
    assert torch.isclose(MixedLoss(0, 0, 1)(noisy, target), dssim)
    expected = 0.3 * l1 + 0.3 * l2 + 0.4 * dssim
    assert torch.isclose(MixedLoss(0.3, 0.3, 0.4)(noisy, target), expected)


def test_mixed_loss_zero_weight_terms_are_skipped():
    # without the MS-DSSIM term any shape is accepted (0.1.0 behaviour)
    pred, target = torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8)
    assert MixedLoss(1, 0, 0)(pred, target).item() == 1.0
    assert MixedLoss(0, 2, 0)(pred, target).item() == 2.0
    with pytest.raises(ValueError, match=r"\(B, C, D, H, W\)"):
        MixedLoss()(pred, target)


def test_mixed_loss_rejects_all_zero_weights():
    with pytest.raises(ValueError, match="cannot all be zero"):
        MixedLoss(0, 0, 0)


def test_ms_ssim_identity_bounds_and_symmetry_under_rescaling(stacks):
    target, noisy = stacks
    assert ms_ssim_25d(target, target).item() == pytest.approx(1.0, abs=1e-5)
    value = ms_ssim_25d(noisy, target)
    assert 0 < value < 1
    # shifting and scaling both inputs together does not change the value
    assert torch.isclose(ms_ssim_25d(3 * noisy - 1, 3 * target - 1), value, atol=1e-5)
    # independent noise has (almost) no structural similarity
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(2, 1, 1, 176, 176, generator=gen)
    b = torch.rand(2, 1, 1, 176, 176, generator=gen)
    assert ms_ssim_25d(a, b) < 0.1


def test_ms_ssim_needs_176_pixels_in_plane():
    x = torch.rand(1, 1, 2, 160, 200)
    with pytest.raises(ValueError, match="176"):
        ms_ssim_25d(x, x)


def test_ms_ssim_has_gradients(stacks):
    target, noisy = stacks
    pred = noisy.clone().requires_grad_(True)
    (1 - ms_ssim_25d(pred, target)).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def _mse_and_dice_parts(pred, target, mask=None, **kwargs):
    """Solve loss(lambda) = lambda * A + (1 - lambda) * B for A and B."""
    lo = SpotlightLoss(lambda_mse=0.25, **kwargs)(pred, target, mask)
    hi = SpotlightLoss(lambda_mse=0.75, **kwargs)(pred, target, mask)
    dice = (0.75 * lo - 0.25 * hi) / 0.5
    return ((hi - 0.25 * dice) / 0.75).item(), dice.item()


def test_spotlight_mse_over_foreground_and_soft_dice():
    shape = (1, 1, 1, 8, 8)
    half = torch.zeros(shape)
    half[..., :4, :] = 1
    target = torch.full(shape, 3.0)
    # prediction >= 1: soft foreground is 1 everywhere: Dice = 1 - 2*32/(64+32)
    mse, dice = _mse_and_dice_parts(torch.full(shape, 2.0), target, half)
    assert mse == pytest.approx(1.0)
    assert dice == pytest.approx(1 / 3, abs=1e-5)
    # prediction <= 0: nothing predicted: Dice loss 1
    assert _mse_and_dice_parts(torch.zeros(shape), target, half)[1] == pytest.approx(1.0)
    # 0.5 -> (x - kx) / (k - 2k|x| + 1) = 0.75 for k = -0.5
    soft = 0.75
    expected = 1 - 2 * 32 * soft / (64 * soft + 32)
    got = _mse_and_dice_parts(torch.full(shape, 0.5), target, half, sigmoid_k=-0.5)[1]
    assert got == pytest.approx(expected, abs=1e-5)


def test_spotlight_without_a_real_mask_uses_full_mse_only():
    shape = (1, 1, 1, 8, 8)
    pred, target = torch.zeros(shape), torch.full(shape, 3.0)
    for mask in (torch.ones(shape), torch.zeros(shape)):
        mse, dice = _mse_and_dice_parts(pred, target, mask)
        assert mse == pytest.approx(9.0) and dice == pytest.approx(0.0)


def test_spotlight_per_sample_masks_from_otsu_and_fixed_threshold():
    target = torch.zeros(2, 1, 1, 8, 8)
    target[0, ..., :4, :] = 2.0
    target[1, ..., :2, :] = 5.0
    pred = torch.full_like(target, 0.5)
    # per-sample masked MSE, then the mean over samples
    expected_mse = ((0.5 - 2) ** 2 + (0.5 - 5) ** 2) / 2
    for kwargs in ({}, {"fg_threshold": 1.0}):
        assert _mse_and_dice_parts(pred, target, **kwargs)[0] == pytest.approx(expected_mse)


def test_spotlight_validates_parameters():
    with pytest.raises(ValueError, match="lambda_mse"):
        SpotlightLoss(lambda_mse=1.0)
    with pytest.raises(ValueError, match="sigmoid_k"):
        SpotlightLoss(sigmoid_k=-2.0)


def test_otsu_threshold_separates_two_levels():
    values = torch.cat([torch.zeros(30), torch.full((10,), 4.0)])[None]
    thr = otsu_threshold(values)
    assert 0 < thr.item() < 4
