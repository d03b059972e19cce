"""CellDinoModel: the 0.1.0 behaviour of the CELL-DINO wrapper (found with the oracle).

A ViT-L/16 in the DINOv2 key layout is loaded strictly from a local ``.pth`` state dict;
every channel is embedded as its own single-channel image (resized bilinearly, z-scored per
image and channel with the population std) and the class tokens are averaged over channels.
The weights are written once per module at ``img_size=32`` (5 tokens) to keep it quick.
"""

from __future__ import annotations

import pytest
import torch

from viscy_models.foundation import CellDinoModel
from viscy_models.foundation._vit import ChunkedViT


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    vit = ChunkedViT(img_size=32, patch_size=16)
    with torch.no_grad():
        for p in vit.parameters():
            p.add_(0.02 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("cell_dino") / "vit.pth"
    torch.save(vit.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def model(weights):
    return CellDinoModel(str(weights), img_size=32)


def test_state_dict_layout_is_dinov2_chunked(model):
    keys = model.state_dict()
    assert {"model.cls_token", "model.pos_embed", "model.mask_token"} <= set(keys)
    assert keys["model.pos_embed"].shape == (1, 5, 1024)  # (32 / 16) ** 2 + 1
    assert keys["model.patch_embed.proj.weight"].shape == (1024, 1, 16, 16)
    # 24 blocks stored in 4 chunks of 6, each block keeping its global index
    assert "model.blocks.0.5.ls2.gamma" in keys and "model.blocks.3.23.mlp.fc2.bias" in keys
    assert not any(k.startswith("model.blocks.1.0.") for k in keys)
    assert len(keys) == 343


def test_frozen_backbone_stays_in_eval(model):
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert model.training and not model.model.training
    assert model.target_size == (32, 32)


def test_preprocess_middle_slice_resize_and_zscore(model):
    x = torch.rand(2, 3, 5, 20, 24) * 100
    out = model.preprocess_2d(x)
    assert out.shape == (2, 3, 32, 32)
    flat = out.flatten(2)
    assert torch.allclose(flat.mean(-1), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(flat.std(-1, unbiased=False), torch.ones(2, 3), atol=1e-5)
    # the middle Z slice, and a 4D input of that slice, give the same image
    assert torch.equal(out, model.preprocess_2d(x[:, :, 2]))
    # a constant image is all zeros, not NaN
    assert torch.equal(model.preprocess_2d(torch.ones(1, 1, 8, 8)), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="Expected"):
        model.preprocess_2d(torch.rand(2, 3, 4))


def test_forward_averages_channels_and_returns_features_twice(model):
    x = torch.randn(2, 2, 3, 16, 16)
    with torch.no_grad():
        features, projections = model(x)
        per_channel = [model(x[:, c : c + 1])[0] for c in range(2)]
    assert features.shape == (2, 1024)
    assert projections is features
    assert torch.allclose(features, (per_channel[0] + per_channel[1]) / 2, atol=1e-5)


def test_projection_and_unfrozen(weights):
    head = torch.nn.Linear(1024, 8)
    m = CellDinoModel(str(weights), img_size=32, freeze=False, projection=head)
    assert all(p.requires_grad for p in m.model.parameters())
    with torch.no_grad():
        features, projections = m(torch.randn(1, 1, 16, 16))
    assert projections.shape == (1, 8)
    assert torch.allclose(projections, head(features))


def test_bad_weights(weights, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        CellDinoModel(str(tmp_path / "missing.pth"))
    with pytest.raises(RuntimeError, match="pos_embed"):  # built for 224 px, weights for 32
        CellDinoModel(str(weights))
