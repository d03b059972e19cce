"""Per-target metrics (cytoland.metrics)."""

from __future__ import annotations

import pytest
import torch

from cytoland.metrics import channel_metrics, mae, pearson_r, psnr, ssim


def test_pearson_of_related_images():
    torch.manual_seed(0)
    x = torch.randn(3, 2, 1, 32, 32)
    assert torch.allclose(pearson_r(x, 3 * x + 1), torch.ones(3, 2), atol=1e-5)
    assert torch.allclose(pearson_r(-x, x), -torch.ones(3, 2), atol=1e-5)
    assert pearson_r(torch.randn(3, 2, 1, 64, 64), x.repeat(1, 1, 1, 2, 2)).abs().max() < 0.1
    assert torch.all(pearson_r(torch.zeros_like(x), x) == 0)  # constant prediction


def test_ssim_psnr_mae_order_predictions():
    torch.manual_seed(0)
    target = torch.randn(2, 1, 1, 48, 48).cumsum(-1)  # smooth-ish structure
    close = target + 0.1 * torch.randn_like(target)
    far = target + 2.0 * torch.randn_like(target)
    assert torch.allclose(ssim(target, target), torch.ones(2, 1), atol=1e-4)
    assert torch.all(ssim(close, target) > ssim(far, target))
    assert torch.all(psnr(close, target) > psnr(far, target))
    assert torch.all(mae(close, target) < mae(far, target))
    # SSIM does not depend on the intensity unit (both scaled by the target's range)
    assert torch.allclose(ssim(10 * close, 10 * target), ssim(close, target), atol=1e-4)


def test_ssim_of_stacks():
    torch.manual_seed(0)
    target = torch.randn(2, 1, 5, 32, 32)
    assert ssim(target, target).shape == (2, 1)
    assert torch.allclose(ssim(target, target), torch.ones(2, 1), atol=1e-4)
    assert ssim(target[:, :, :2], target[:, :, :2]).shape == (2, 1)


def test_channel_metrics_names_each_target():
    pred, target = torch.randn(2, 2, 1, 32, 32), torch.randn(2, 2, 1, 32, 32)
    out = channel_metrics(pred, target, ["Nuclei", "Membrane"])
    assert set(out) == {"Nuclei", "Membrane"}
    assert set(out["Nuclei"]) == {"pearson", "ssim", "psnr", "mae"}
    with pytest.raises(ValueError, match="2 channels"):
        channel_metrics(pred, target, ["Nuclei"])
    with pytest.raises(ValueError, match="differs from target"):
        pearson_r(pred, target[:, :1])
