"""Heads, lazy exports, and pretrained weights without network."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import pytest
import torch

import viscy_models
from viscy_models import MLP, CosineClassifier, PretrainedWeightsUnavailableError
from viscy_models.components import StemDepthtoChannels


def test_public_names_and_module_paths():
    paths = {
        "UNeXt2": "viscy_models.unet.unext2",
        "FullyConvolutionalMAE": "viscy_models.unet.fcmae",
        "Unet2d": "viscy_models.unet.unet2d",
        "Unet25d": "viscy_models.unet.unet25d",
        "Unet3d": "viscy_models.unet.unet3d",
        "ContrastiveEncoder": "viscy_models.contrastive.encoder",
        "ResNet3dEncoder": "viscy_models.contrastive.resnet3d",
        "BetaVae25D": "viscy_models.vae.beta_vae_25d",
        "BetaVaeMonai": "viscy_models.vae.beta_vae_monai",
        "MLP": "viscy_models.components.heads",
        "CosineClassifier": "viscy_models.components.heads",
        "NTXentLoss": "viscy_models.contrastive.loss",
        "NTXentHCL": "viscy_models.contrastive.loss",
    }
    for name, module in paths.items():
        obj = getattr(viscy_models, name)
        assert obj.__module__ == module, name
        assert name in viscy_models.__all__


def test_no_mutable_defaults():
    for name in viscy_models.__all__:
        obj = getattr(viscy_models, name)
        if not inspect.isclass(obj) or not issubclass(obj, torch.nn.Module):
            continue
        for param in inspect.signature(obj.__init__).parameters.values():
            assert not isinstance(param.default, list | dict | set), (name, param.name)


def test_import_is_lazy():
    code = "import sys, viscy_models; print('timm' in sys.modules, 'monai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_stem_folds_depth_into_channels():
    stem = StemDepthtoChannels(2, 10, 40, stem_kernel_size=(5, 4, 4), stem_stride=(5, 4, 4))
    assert stem(torch.randn(1, 2, 10, 16, 16)).shape == (1, 40, 4, 4)
    with pytest.raises(ValueError, match="Input depth 5 differs"):
        stem(torch.randn(1, 2, 5, 16, 16))


def test_mlp_projection_mode_layout():
    """Projection mode (0.1.0): Linear-norm-act[-dropout] per hidden layer, then
    Linear(out_dims) and a final norm, all under ``backbone``; encode() is for classifiers."""
    mlp = MLP(16, [32, 24], out_dims=8, norm="ln", activation="gelu", dropout=0.1)
    kinds = [type(m).__name__ for m in mlp.backbone]
    assert kinds == ["Linear", "LayerNorm", "GELU", "Dropout"] * 2 + ["Linear", "LayerNorm"]
    mlp.eval()
    x = torch.randn(4, 16)
    out = mlp(x)
    assert out.shape == (4, 8)
    # the final LayerNorm (identity affine at init): zero mean, unit variance per row
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(4), atol=1e-5, rtol=0)
    relu = MLP(16, 32, out_dims=8)
    assert isinstance(relu.backbone[2], torch.nn.ReLU) and relu.backbone[2].inplace
    assert "backbone.4.running_var" in relu.state_dict()  # BatchNorm after the projection
    with pytest.raises(RuntimeError, match="classification mode"):
        mlp.encode(x)
    with pytest.raises(ValueError, match="out_dims is required"):
        MLP(16, 32)
    with pytest.raises(ValueError, match="norm must be 'bn' or 'ln'"):
        MLP(16, 32, out_dims=8, norm="group")
    with pytest.raises(ValueError, match="activation must be"):
        MLP(16, 32, out_dims=8, activation="tanh")
    assert len(MLP(16, [], out_dims=8).backbone) == 2  # no hidden layer: Linear + norm


def test_mlp_classification_mode():
    """Classification mode: hidden layers then ``head``; encode() gives unit-norm features
    of the last hidden layer and out_dims is not used (warned)."""
    x = torch.randn(4, 16)
    with pytest.warns(UserWarning, match="out_dims=8 is not used"):
        mlp = MLP(16, 32, out_dims=8, num_classes=3)
    mlp.eval()
    assert isinstance(mlp.head, CosineClassifier)
    assert [type(m).__name__ for m in mlp.backbone] == ["Linear", "BatchNorm1d", "ReLU"]
    features = mlp.encode(x)
    assert features.shape == (4, 32)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(mlp(x), mlp.head(mlp.backbone(x)))
    plain = MLP(16, 32, cosine_classifier=False, num_classes=2)
    assert isinstance(plain.head, torch.nn.Linear)
    assert sorted(k for k in plain.state_dict() if k.startswith("head")) == [
        "head.bias",
        "head.weight",
    ]


def test_cosine_classifier_scale_is_stored_as_its_log():
    clf = CosineClassifier(8, 3, init_scale=10.0, learn_scale=False)
    assert "log_scale" in dict(clf.named_buffers())
    assert "log_scale" not in dict(clf.named_parameters())
    torch.testing.assert_close(clf.state_dict()["log_scale"], torch.tensor(math.log(10.0)))
    x = torch.randn(5, 8)
    logits = clf(x)
    cosine = (
        torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(clf.weight, dim=1).T
    )
    torch.testing.assert_close(logits, 10.0 * cosine)
    torch.testing.assert_close(logits, clf(7.0 * x))  # scale invariant in the input
    learned = CosineClassifier(8, 3)
    assert set(dict(learned.named_parameters())) == {"weight", "log_scale"}
    # a learned log-scale cannot turn the scale negative
    with torch.no_grad():
        learned.log_scale.fill_(-3.0)
    assert float(learned.scale) > 0
    torch.testing.assert_close(learned(torch.zeros(2, 8)), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="init_scale must be positive"):
        CosineClassifier(8, 3, init_scale=0.0)


def _force_offline(monkeypatch):
    """No network here anyway; offline mode makes the hub fail fast instead of timing out."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)


def test_pretrained_without_network_is_a_clear_error(monkeypatch):
    _force_offline(monkeypatch)
    try:
        viscy_models.UNeXt2(backbone="convnextv2_atto", pretrained=True)
    except PretrainedWeightsUnavailableError as err:
        message = str(err)
    else:
        pytest.skip("convnextv2_atto weights are in the local cache; nothing to fetch")
    assert "pretrained=False" in message
    assert "convnextv2_atto" in message


@pytest.mark.parametrize("name", ["DINOv3Model", "OpenPhenomModel"])
def test_foundation_wrappers_fail_clearly(name, monkeypatch):
    _force_offline(monkeypatch)
    cls = getattr(viscy_models, name)
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"viscy-models\[foundation\]"):
            cls("facebook/dinov3-vits16-pretrain-lvd1689m")
    else:
        with pytest.raises(PretrainedWeightsUnavailableError, match="network"):
            cls("some-org/model-that-is-not-cached")


def test_conv_block_0_1_0_layout_and_shortcuts():
    """ConvBlock2D/3D: 3 layers of conv -> ReLU -> BatchNorm by default; the residual
    shortcut zero-pads channels in front when widening and uses the 1x1 conv when
    narrowing (the behaviour of the 0.1.0 blocks)."""
    from viscy_models.components import ConvBlock2D, ConvBlock3D

    block = ConvBlock2D(4, 8).eval()
    names = [n for n, _ in block.named_children()]
    assert [n for n in names if n.startswith("Conv2d_")] == ["Conv2d_0", "Conv2d_1", "Conv2d_2"]
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        full = block(x)
        block.residual = False
        plain = block(x)
    shortcut = full - plain
    assert torch.allclose(shortcut[:, :4], torch.zeros(1, 4, 8, 8), atol=1e-6)
    assert torch.allclose(shortcut[:, 4:], x, atol=1e-6)
    # conv -> activation -> norm: with an identity BatchNorm the output is non-negative
    block = ConvBlock3D(4, 2, residual=False, num_repeats=1).eval()
    with torch.no_grad():
        block.batch_norm_0.bias.fill_(0.0)
        assert (block(torch.randn(1, 4, 2, 8, 8)) >= 0).all()
    narrowing = ConvBlock2D(8, 4, num_repeats=1).eval()
    with torch.no_grad():
        y = torch.randn(1, 8, 8, 8)
        with_res = narrowing(y)
        narrowing.residual = False
        assert torch.allclose(with_res - narrowing(y), narrowing.resid_conv(y), atol=1e-5)
