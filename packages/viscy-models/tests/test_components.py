"""Heads, lazy exports, and pretrained weights without network."""

from __future__ import annotations

import inspect
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


def test_mlp_encode_and_classify():
    mlp = MLP(16, (32, 24), out_dims=8, norm="ln", activation="gelu", num_classes=3)
    x = torch.randn(4, 16)
    assert mlp.encode(x).shape == (4, 8)
    assert mlp(x).shape == (4, 3)
    assert isinstance(mlp.classifier, CosineClassifier)
    plain = MLP(16, 32, cosine_classifier=False, num_classes=2)
    assert isinstance(plain.classifier, torch.nn.Linear)
    assert plain(x).shape == (4, 2)
    with pytest.raises(ValueError, match="norm must be one of"):
        MLP(16, 32, norm="group")


def test_cosine_classifier_is_scale_invariant():
    clf = CosineClassifier(8, 3, init_scale=10.0, learn_scale=False)
    x = torch.randn(5, 8)
    logits = clf(x)
    torch.testing.assert_close(logits, clf(7.0 * x))
    assert logits.abs().max() <= 10.0 + 1e-5
    assert "scale" not in dict(clf.named_parameters())
    assert "scale" in dict(CosineClassifier(8, 3).named_parameters())


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
        with pytest.raises(ImportError, match="pip install transformers"):
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
