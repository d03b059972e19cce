"""Task heads, voxel heads and decoder stages: the 0.1.0 behaviours the compat harness found,
with expected values worked out from the behaviour itself."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from viscy_models.components import (
    BaseHead,
    ClassificationHead,
    CrossModalContrastiveHead,
    PixelToVoxelHead,
    PixelToVoxelShuffleHead,
    UNeXt2Decoder,
    icnr_init,
)
from viscy_models.components.heads import PixelShuffleUpsample


def test_base_head_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        BaseHead("a", "b")


def test_cosine_weight_schedule_ramps_by_half_cosine():
    head = ClassificationHead(
        "ko",
        "y",
        8,
        8,
        5,
        top_k=2,
        loss_weight=2.0,
        weight_schedule="cosine",
        weight_start=0.5,
        weight_warmup_epochs=4,
    )
    assert head.get_weight() == 0.5  # epoch 0 before any step
    weights = []
    for epoch in range(6):
        head.step(epoch)
        weights.append(head.get_weight())
    # start + (end - start) * (1 - cos(pi * e / warmup)) / 2, then constant
    expected = [0.5 + 1.5 * (1 - math.cos(math.pi * e / 4)) / 2 for e in range(4)] + [2.0, 2.0]
    assert weights == pytest.approx(expected)
    assert weights[2] == pytest.approx(1.25)  # half way
    constant = ClassificationHead("ko", "y", 8, 8, 5, loss_weight=3.0, weight_start=0.1)
    constant.step(0)
    assert constant.get_weight() == 3.0
    with pytest.raises(ValueError, match="weight_schedule"):
        ClassificationHead("ko", "y", 8, 8, 5, weight_schedule="linear")


def test_classification_head_loss_and_logged_accuracy():
    head = ClassificationHead("ko", "gene", in_dims=4, hidden_dims=6, num_classes=3, top_k=2)
    logits = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 5.0], [2.0, 0.0, 1.0], [0.0, 1.0, 2.0]])
    y = torch.tensor([0, 1, 1, 0])
    loss = head.compute_loss(logits, y)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y))
    logged = {}
    head.log_metrics({"loss": loss, "logits": logits, "y": y}, logged.__setitem__, "val")
    # top-1: only row 0 right; top-2: rows 0 (0 in {0, 1}) and 1 (1 in {2, 1})
    assert set(logged) == {"loss/aux/ko/val", "metrics/acc_top1/ko/val", "metrics/acc_top2/ko/val"}
    assert float(logged["metrics/acc_top1/ko/val"]) == 0.25
    assert float(logged["metrics/acc_top2/ko/val"]) == 0.5
    assert head(torch.randn(5, 4)).shape == (5, 3)
    assert "mlp.head.log_scale" in head.state_dict()
    with pytest.raises(ValueError, match="top_k=5"):
        ClassificationHead("ko", "gene", in_dims=4, hidden_dims=6, num_classes=3)


def test_cross_modal_head_masks_unpaired_rows():
    torch.manual_seed(0)
    head = CrossModalContrastiveHead(
        "tx",
        "X",
        in_dims=6,
        target_dims=5,
        proj_dims=4,
        image_hidden=8,
        target_hidden=[7],
        temperature=0.5,
    ).eval()
    assert [type(m).__name__ for m in head.image_proj.backbone][-1] == "LayerNorm"
    x, target = torch.randn(5, 6), torch.randn(5, 5)
    image = head(x)
    torch.testing.assert_close(image.norm(dim=1), torch.ones(5))
    target[1, 0] = float("nan")  # one NaN makes the row unpaired
    keep = torch.tensor([0, 2, 3, 4])
    projected = head.project_target(target[keep])
    logits = image[keep] @ projected.T / 0.5
    labels = torch.arange(4)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(head.compute_loss(image, target), expected)
    lone = torch.full_like(target, float("nan"))
    lone[0] = 1.0
    head.train()
    zero = head.compute_loss(head(x), lone)
    assert float(zero.detach()) == 0.0
    zero.backward()  # still part of the graph
    logged = {}
    head.log_metrics({"loss": zero, "logits": image, "y": lone}, logged.__setitem__, "train")
    assert sorted(logged) == ["loss/aux/tx/train", "metrics/paired_frac/tx/train"]
    assert float(logged["metrics/paired_frac/tx/train"]) == pytest.approx(0.2)


def test_pixel_shuffle_blur_pads_with_zeros():
    up = PixelShuffleUpsample(2, pool=True)
    out = up(torch.ones(1, 4, 2, 2))
    # interior pixels average four ones; the first row/column average in zero padding
    assert out[0, 0, 1:, 1:].eq(1.0).all()
    assert out[0, 0, 0, 0] == 0.25 and out[0, 0, 0, 1] == 0.5


def test_voxel_heads_build_like_0_1_0_and_check_at_forward():
    with pytest.warns(UserWarning, match="28 channels"):
        head = PixelToVoxelHead(32, 2, 5, expansion_ratio=4, pool=False)
    assert head(torch.randn(1, 28, 8, 8)).shape == (1, 2, 5, 32, 32)
    with pytest.raises(ValueError, match=r"\(B, 28, Y, X\)"):
        head(torch.randn(1, 32, 8, 8))
    with pytest.raises(ValueError, match="at least"):
        PixelToVoxelHead(8, 2, 5, expansion_ratio=4, pool=False)
    with pytest.warns(UserWarning, match="in_channels is not used"):
        shuffle = PixelToVoxelShuffleHead(40, 2, 5)
    assert shuffle(torch.randn(1, 160, 4, 4)).shape == (1, 2, 5, 16, 16)
    with pytest.raises(ValueError, match="160"):
        shuffle(torch.randn(1, 40, 4, 4))
    small = PixelToVoxelShuffleHead(12, 1, 3, xy_scaling=2)
    x = torch.randn(1, 12, 4, 4)
    torch.testing.assert_close(small(x), F.pixel_shuffle(x, 2).reshape(1, 1, 3, 8, 8))


def test_icnr_init_repeats_subkernels_for_pixel_shuffle():
    conv = torch.nn.Conv2d(8, 16, 3)
    torch.nn.init.constant_(conv.bias, 0.5)
    icnr_init(conv, 2, upsample_dims=2)
    w = conv.weight.detach()
    for group in range(4):
        block = w[4 * group : 4 * group + 4]
        assert torch.equal(block, block[:1].expand_as(block))
    assert not torch.equal(w[0], w[4])
    assert conv.bias.eq(0.5).all()
    # after pixel shuffle each 2x2 output block is constant at init (no checkerboard)
    out = F.pixel_shuffle(conv(torch.randn(1, 8, 6, 6)) - 0.5, 2)
    torch.testing.assert_close(out[..., ::2, ::2], out[..., 1::2, 1::2])
    with pytest.raises(ValueError, match="multiple"):
        icnr_init(torch.nn.Conv2d(8, 6, 3), 2, upsample_dims=2)


def test_unext2_decoder_skips_are_half_the_input_width():
    decoder = UNeXt2Decoder([64, 32, 16, 24], "instance", "pixelshuffle", 1, [2, 2, 2], None)
    # stage 2: 16 / 4 upsampled + 16 // 2 skip channels enter the ConvNeXt stage
    assert decoder.decoder_stages[2].conv.downsample[0].weight.shape == (4 + 8,)
    features = [torch.randn(1, 64, 2, 2), torch.randn(1, 32, 4, 4)]
    features += [torch.randn(1, 16, 8, 8), torch.randn(1, 8, 16, 16)]
    assert decoder(features).shape == (1, 24, 16, 16)
    with pytest.raises(ValueError, match="needs 4 features"):
        decoder(features[:2])


def test_conv_block_3d_padding_is_x_first_and_int_means_same():
    from viscy_models.components import ConvBlock3D

    x = torch.randn(1, 2, 3, 8, 8)
    # (px, py, pz) = (0, 1, 2): X unpadded (8 - 2), Y kept, Z grows by 2 * 2 - 0
    block = ConvBlock3D(
        2, 4, residual=False, kernel_size=(1, 3, 3), padding=(0, 1, 2), num_repeats=1
    )
    assert block.eval()(x).shape == (1, 4, 7, 8, 6)
    same = ConvBlock3D(2, 4, residual=False, kernel_size=(3, 3, 3), padding=5, num_repeats=2)
    assert same.eval()(x).shape == (1, 4, 3, 8, 8)
