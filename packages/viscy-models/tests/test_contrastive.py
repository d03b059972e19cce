"""Contrastive encoders: documented shapes, gradients, bf16, invalid configurations."""

from __future__ import annotations

import pytest
import torch

from viscy_models import ContrastiveEncoder, ResNet3dEncoder


def test_convnext_encoder_documented_shapes(contrastive_convnext):
    contrastive_convnext.eval()
    with torch.no_grad():
        features, projections = contrastive_convnext(torch.randn(2, 2, 15, 64, 64))
    assert features.shape == (2, 768)
    assert projections.shape == (2, 128)


def test_convnext_encoder_gradients(contrastive_convnext, assert_all_grads):
    contrastive_convnext.train()
    contrastive_convnext.zero_grad()
    features, projections = contrastive_convnext(torch.randn(2, 2, 15, 32, 32))
    (features.mean() + projections.mean()).backward()
    assert_all_grads(contrastive_convnext)


def test_convnext_encoder_bf16_autocast(contrastive_convnext):
    contrastive_convnext.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features, projections = contrastive_convnext(torch.randn(2, 2, 15, 32, 32))
    assert torch.isfinite(features.float()).all()
    assert torch.isfinite(projections.float()).all()


def test_resnet50_encoder_shapes():
    model = ContrastiveEncoder(
        "resnet50",
        in_channels=2,
        in_stack_depth=16,
        stem_kernel_size=(4, 4, 4),
        stem_stride=(4, 4, 4),
        embedding_dim=2048,
        projection_dim=32,
    ).eval()
    with torch.no_grad():
        features, projections = model(torch.randn(2, 2, 16, 32, 32))
    assert features.shape == (2, 2048)
    assert projections.shape == (2, 32)


def test_embedding_dim_must_match_backbone():
    with torch.device("meta"), pytest.raises(ValueError, match="set embedding_dim=768"):
        ContrastiveEncoder("convnext_tiny", in_channels=1, in_stack_depth=5, embedding_dim=512)


def test_stack_depth_that_does_not_tile_the_stem_warns():
    # like the convolution (and 0.1.0's BetaVae25D(in_stack_depth=5)): floor, with a warning
    with torch.device("meta"), pytest.warns(UserWarning, match="in_stack_depth=14"):
        ContrastiveEncoder("convnext_tiny", in_channels=1, in_stack_depth=14)
    with torch.device("meta"), pytest.raises(ValueError, match="smaller than the stem"):
        ContrastiveEncoder("convnext_tiny", in_channels=1, in_stack_depth=3)


def test_slices_must_divide_backbone_channels():
    # 35 slices of kernel 5 -> 7 slices; 96 % 7 != 0
    with torch.device("meta"), pytest.raises(ValueError, match=r"96 channels.*7 depth slices"):
        ContrastiveEncoder("convnext_tiny", in_channels=1, in_stack_depth=35)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="backbone must be one of"):
        ContrastiveEncoder("vit_base", in_channels=1, in_stack_depth=5)


def test_resnet3d_encoder(assert_all_grads):
    torch.manual_seed(0)
    model = ResNet3dEncoder("resnet10", in_channels=1, embedding_dim=512, projection_dim=16)
    features, projections = model(torch.randn(2, 1, 8, 16, 16))
    assert features.shape == (2, 512)
    assert projections.shape == (2, 16)
    projections.mean().backward()
    assert_all_grads(model)
    with pytest.raises(ValueError, match="set embedding_dim=512"):
        ResNet3dEncoder("resnet10", embedding_dim=2048)
