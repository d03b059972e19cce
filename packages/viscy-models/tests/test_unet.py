"""Image translation models: shapes, masking, gradients, bf16, invalid configurations."""

from __future__ import annotations

import pytest
import torch

from viscy_models import FullyConvolutionalMAE, Unet2d, Unet3d, Unet25d, UNeXt2


def test_unext2_default_keeps_shape(unext2_default):
    unext2_default.eval()
    with torch.no_grad():
        out = unext2_default(torch.randn(1, 1, 5, 128, 128))
    assert out.shape == (1, 1, 5, 128, 128)
    assert torch.isfinite(out).all()


def test_unext2_atto_multichannel_gradients(unext2_atto, assert_all_grads):
    unext2_atto.train()
    unext2_atto.zero_grad()
    x = torch.randn(1, 1, 10, 64, 64, requires_grad=True)
    out = unext2_atto(x)
    assert out.shape == (1, 2, 10, 64, 64)
    out.square().mean().backward()
    assert x.grad is not None
    assert x.grad.abs().sum() > 0
    assert_all_grads(unext2_atto)


def test_unext2_bf16_autocast(unext2_atto):
    unext2_atto.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = unext2_atto(torch.randn(1, 1, 10, 64, 64))
    assert out.shape == (1, 2, 10, 64, 64)
    assert torch.isfinite(out.float()).all()


def test_unext2_out_stack_depth():
    model = UNeXt2(in_stack_depth=5, out_stack_depth=3, backbone="convnextv2_atto")
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 5, 64, 64)).shape == (1, 1, 3, 64, 64)


def test_unext2_depth_not_divisible_by_stem():
    with pytest.raises(ValueError, match=r"in_stack_depth=7.*stem_kernel_size\[0\]=5"):
        UNeXt2(in_stack_depth=7)


def test_unext2_slices_not_dividing_backbone_channels():
    # 35 / 5 = 7 slices; convnextv2_atto's 40 stem channels are not a multiple of 7
    with pytest.raises(ValueError, match=r"40 channels.*7 depth slices"):
        UNeXt2(in_stack_depth=35, backbone="convnextv2_atto")


def test_unext2_rejects_yx_not_multiple_of_32(unext2_atto):
    with pytest.raises(ValueError, match="multiples of 32"):
        unext2_atto(torch.randn(1, 1, 10, 48, 48))


@pytest.fixture(scope="module")
def fcmae():
    torch.manual_seed(0)
    return FullyConvolutionalMAE(
        in_channels=1, out_channels=1, encoder_blocks=(1, 1, 1, 1), dims=(32, 64, 128, 256)
    )


def test_fcmae_mask_returned_and_masked_input_ignored(fcmae):
    fcmae.eval()
    x = torch.randn(2, 1, 5, 64, 64)
    torch.manual_seed(1)
    with torch.no_grad():
        out, mask = fcmae(x, mask_ratio=0.5)
    assert out.shape == (2, 1, 5, 64, 64)
    assert mask.shape == (2, 1, 64, 64)
    assert mask.dtype == torch.bool
    # 2x2 grid of 32-pixel patches, half masked
    assert mask.float().mean(dim=(1, 2, 3)).tolist() == [0.5, 0.5]
    # content under masked patches must not reach the output (same mask: same seed)
    x2 = x.clone()
    x2[mask[:, :, None].expand_as(x)] = 100.0
    torch.manual_seed(1)
    with torch.no_grad():
        out2, mask2 = fcmae(x2, mask_ratio=0.5)
    assert torch.equal(mask, mask2)
    torch.testing.assert_close(out, out2)
    # and without masking it does
    with torch.no_grad():
        plain, no_mask = fcmae(x)
        plain2, _ = fcmae(x2)
    assert no_mask is None
    assert not torch.allclose(plain, plain2)


def test_fcmae_gradients_and_bf16(fcmae, assert_all_grads):
    fcmae.train()
    fcmae.zero_grad()
    out, _ = fcmae(torch.randn(2, 1, 5, 64, 64), mask_ratio=0.25)
    out.mean().backward()
    assert_all_grads(fcmae, skip=("stem.conv2d",))  # 2D stem is unused for 3D input
    fcmae.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = fcmae(torch.randn(1, 1, 5, 64, 64))
    assert torch.isfinite(out.float()).all()


def test_fcmae_finetuning_mode_and_2d_input():
    model = FullyConvolutionalMAE(
        1,
        2,
        encoder_blocks=(1, 1, 1, 1),
        dims=(16, 32, 64, 128),
        in_stack_depth=1,
        stem_kernel_size=(1, 4, 4),
        pretraining=False,
        head_conv=True,
        head_conv_expansion_ratio=2,
    ).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 1, 32, 32))
    assert out.shape == (1, 2, 1, 32, 32)
    with pytest.raises(ValueError, match="pretraining=True"):
        model(torch.randn(1, 1, 1, 32, 32), mask_ratio=0.5)


def test_fcmae_invalid_stem():
    with pytest.raises(ValueError, match=r"in_stack_depth=6.*stem_kernel_size\[0\]=5"):
        FullyConvolutionalMAE(1, 1, in_stack_depth=6)


def test_unet2d_shapes_and_gradients(assert_all_grads):
    model = Unet2d(in_channels=2, out_channels=3, num_blocks=2, residual=True)
    x = torch.randn(2, 2, 32, 32)
    out = model(x)
    assert out.shape == (2, 3, 32, 32)
    out.mean().backward()
    # widening residual blocks zero-pad their input (0.1.0): their 1x1 shortcut is unused
    assert_all_grads(model, skip=("resid_conv",))
    assert model.up_conv_block_0.resid_conv.weight.grad is not None
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 2, 1, 32, 32)).shape == (1, 3, 1, 32, 32)


def test_unet2d_invalid_filters():
    with pytest.raises(ValueError, match="num_blocks \\+ 1 = 5"):
        Unet2d(num_filters=(8, 16, 32))


def test_unet25d_compresses_depth(assert_all_grads):
    model = Unet25d(in_stack_depth=5, out_stack_depth=1, num_blocks=2, residual=True)
    out = model(torch.randn(2, 1, 5, 32, 32))
    assert out.shape == (2, 1, 1, 32, 32)
    out.mean().backward()
    assert_all_grads(model, skip=("resid_conv",))
    model3 = Unet25d(in_stack_depth=5, out_stack_depth=3, num_blocks=2).eval()
    with torch.no_grad():
        assert model3(torch.randn(1, 1, 5, 32, 32)).shape == (1, 1, 3, 32, 32)
    with pytest.raises(ValueError, match="in_stack_depth=5"):
        Unet25d(in_stack_depth=5, out_stack_depth=6)


def test_unet3d_shapes_bf16():
    model = Unet3d(in_channels=1, out_channels=2, depth=2, mult_chan=4, in_stack_depth=8)
    out = model(torch.randn(2, 1, 8, 16, 16))
    assert out.shape == (2, 2, 8, 16, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model.eval()(torch.randn(1, 1, 8, 16, 16)).float()).all()
    # 0.1.0 builds any in_stack_depth and checks the input's Z, Y, X in forward
    model = Unet3d(depth=2, in_stack_depth=6)
    with pytest.raises(ValueError, match="D=6 must be divisible by 4"):
        model(torch.randn(1, 1, 6, 16, 16))


def test_unext2_deconv_is_the_0_1_0_layout():
    """deconv stages (0.1.0): bias-free transposed conv to the stage width, one residual
    unit on upsampled + skip channels and a 1x1 conv; conv_blocks is not used. It fits only
    where the head width plus the 1/4 skip equals the 1/8 width: convnextv2_atto (40, 80,
    ...) with out_stack_depth 5 needs 112 + 40 == 80, which raises instead of failing at
    the first forward pass as in 0.1.0."""
    with pytest.raises(ValueError, match=r"112 \+ 40 != 80"):
        UNeXt2(backbone="convnextv2_atto", in_stack_depth=5, decoder_mode="deconv")
    from viscy_models.components import UNeXt2UpStage

    stage = UNeXt2UpStage(64, 32, 32, 2, "deconv", 3, "batch", None).eval()
    shapes = {k: tuple(v.shape) for k, v in stage.state_dict().items() if "unit1" not in k}
    assert shapes["upsample.conv.weight"] == (64, 32, 2, 2)
    assert "upsample.conv.bias" not in shapes
    assert shapes["conv.0.conv.unit0.conv.weight"] == (64, 64, 3, 3)
    assert shapes["conv.1.weight"] == (32, 64, 1, 1)
    assert stage(torch.randn(1, 64, 4, 4), torch.randn(1, 32, 8, 8)).shape == (1, 32, 8, 8)
    with pytest.raises(ValueError, match="0.1.0 deconv layout"):
        UNeXt2UpStage(64, 16, 32, 2, "deconv", 1, "batch", None)


@pytest.mark.parametrize(
    "options",
    [
        {"decoder_upsample_pre_conv": True, "head_pool": True, "decoder_conv_blocks": 1},
        {"decoder_upsample_pre_conv": True, "decoder_norm_layer": "batch"},
    ],
    ids=["preconv-headpool", "preconv-batch"],
)
def test_unext2_decoder_options(options):
    model = UNeXt2(backbone="convnextv2_atto", in_stack_depth=5, **options).eval()
    params = sum(p.numel() for p in model.decoder.parameters())
    plain = UNeXt2(backbone="convnextv2_atto", in_stack_depth=5, decoder_conv_blocks=1)
    assert params != sum(p.numel() for p in plain.decoder.parameters())
    with torch.no_grad():
        assert model(torch.randn(1, 1, 5, 64, 64)).shape == (1, 1, 5, 64, 64)
