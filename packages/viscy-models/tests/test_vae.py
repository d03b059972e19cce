"""Variational autoencoders."""

from __future__ import annotations

import pytest
import torch

from viscy_models import BetaVae25D, BetaVaeMonai


@pytest.fixture(scope="module")
def vae25d():
    # ConvNeXt-T (stride 32) needs one decoder stage less than ResNet-50 and has a 768-channel
    # (not 2048) feature map: a much cheaper backward pass for the gradient test
    torch.manual_seed(0)
    return BetaVae25D(
        backbone="convnext_tiny",
        in_channels=2,
        in_stack_depth=4,
        out_stack_depth=4,
        latent_dim=64,
        input_spatial_size=(32, 32),
        decoder_stages=3,
    )


def test_beta_vae_25d_resnet50_forward():
    torch.manual_seed(0)
    model = BetaVae25D(
        backbone="resnet50",
        in_channels=1,
        in_stack_depth=4,
        out_stack_depth=2,
        latent_dim=32,
        input_spatial_size=(64, 64),
    ).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 4, 64, 64))
    assert out.recon_x.shape == (1, 1, 2, 64, 64)
    assert out.z.shape == (1, 32)


def test_beta_vae_25d_reconstructs_shape(vae25d, assert_all_grads):
    vae25d.train()
    vae25d.zero_grad()
    out = vae25d(torch.randn(2, 2, 4, 32, 32))
    assert out.recon_x.shape == (2, 2, 4, 32, 32)
    assert out.mean.shape == out.logvar.shape == out.z.shape == (2, 64)
    assert not torch.equal(out.z, out.mean)  # sampled in training mode
    (out.recon_x.square().mean() + out.logvar.exp().mean()).backward()
    assert_all_grads(vae25d)


def test_beta_vae_25d_eval_samples_like_0_1_0_and_bf16(vae25d):
    vae25d.eval()
    x = torch.randn(1, 2, 4, 32, 32)
    with torch.no_grad():
        torch.manual_seed(1)
        a = vae25d(x)
        torch.manual_seed(1)
        b = vae25d(x)
        # z = mean + eps * exp(logvar / 2) also in eval mode; seeded -> reproducible
        torch.manual_seed(1)
        eps = torch.randn_like(a.mean)
        torch.testing.assert_close(a.z, a.mean + eps * torch.exp(0.5 * a.logvar))
        torch.testing.assert_close(a.recon_x, b.recon_x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            c = vae25d(x)
    assert torch.isfinite(c.recon_x.float()).all()


def test_beta_vae_25d_invalid_configs():
    with torch.device("meta"):
        with pytest.raises(ValueError, match="set decoder_stages=4"):
            BetaVae25D(input_spatial_size=(128, 128), decoder_stages=3)
        with pytest.raises(ValueError, match="input_spatial_size=\\(100, 100\\)"):
            BetaVae25D(input_spatial_size=(100, 100))


def test_beta_vae_monai_2d():
    model = BetaVaeMonai(
        spatial_dims=2,
        in_shape=(1, 32, 32),
        out_channels=1,
        latent_size=8,
        channels=(4, 8),
        strides=(2, 2),
    )
    out = model(torch.randn(2, 1, 32, 32))
    assert out.recon_x.shape == (2, 1, 32, 32)
    assert out.mean.shape == out.logvar.shape == out.z.shape == (2, 8)
    with pytest.raises(ValueError, match="same length"):
        BetaVaeMonai(2, (1, 32, 32), 1, 8, channels=(4, 8), strides=(2,))
