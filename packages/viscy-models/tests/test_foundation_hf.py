"""DINOv3Model and OpenPhenomModel on tiny local Hugging Face models (0.1.0 behaviour).

Needs ``transformers`` (``pip install 'viscy-models[foundation]'`` or ``uv sync --group
compat``); skipped only when that package is absent.
"""

from __future__ import annotations

import json

import pytest
import torch

from viscy_models.foundation.dinov3 import DINOv3Model
from viscy_models.foundation.openphenom import OpenPhenomModel

transformers = pytest.importorskip("transformers")

MEAN, STD = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)


@pytest.fixture(scope="module")
def dinov3_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dinov3")
    config = transformers.DINOv3ViTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=8,
        image_size=32,
        num_register_tokens=1,
    )
    torch.manual_seed(0)
    transformers.DINOv3ViTModel(config).save_pretrained(folder)
    transformers.DINOv3ViTImageProcessor(
        image_mean=list(MEAN), image_std=list(STD), size={"height": 24, "width": 32}
    ).save_pretrained(folder)
    return str(folder)


_PHENOM_CODE = """import torch
from transformers import PretrainedConfig, PreTrainedModel


class EchoConfig(PretrainedConfig):
    model_type = "echo_phenom"


class EchoModel(PreTrainedModel):
    config_class = EchoConfig

    def __init__(self, config):
        super().__init__(config)
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.post_init()

    def forward(self, x):
        return x

    def predict(self, x):
        return x.float().flatten(1) * self.scale
"""


@pytest.fixture(scope="module")
def phenom_dir(tmp_path_factory):
    """A trust_remote_code model whose ``predict`` returns its input, flattened."""
    folder = tmp_path_factory.mktemp("phenom")
    (folder / "modeling_echo.py").write_text(_PHENOM_CODE)
    auto_map = {"AutoConfig": "modeling_echo.EchoConfig", "AutoModel": "modeling_echo.EchoModel"}
    (folder / "config.json").write_text(
        json.dumps({"model_type": "echo_phenom", "auto_map": auto_map})
    )
    from safetensors.torch import save_file

    save_file(
        {"scale": torch.ones(1)}, str(folder / "model.safetensors"), metadata={"format": "pt"}
    )
    return str(folder)


def _normalised(v, c):
    return (min(max((v + 3.0) / 6.0, 0.0), 1.0) - MEAN[c]) / STD[c]


def test_dinov3_preprocess_clips_resizes_and_uses_processor_stats(dinov3_dir):
    model = DINOv3Model(dinov3_dir)
    assert model.target_size == (24, 32)
    x = torch.zeros(1, 2, 3, 8, 8)
    x[:, 0, 1] = 1.5  # middle slice, channel 0
    x[:, 1, 1] = 9.0  # beyond +3: clipped to 1
    out = model.preprocess_2d(x)
    assert out.shape == (1, 3, 24, 32)
    # two channels -> (c0, c1, c0)
    for c, v in enumerate((1.5, 9.0, 1.5)):
        assert torch.allclose(out[0, c], torch.full((24, 32), _normalised(v, c)), atol=1e-6)
    four = model.preprocess_2d(torch.full((1, 4, 24, 32), -6.0))
    expected = [(0 - m) / s for m, s in zip(MEAN, STD, strict=True)]  # -6 clips to 0
    assert torch.allclose(four[0, :, 0, 0], torch.tensor(expected))


def test_dinov3_state_dict_freeze_and_projection(dinov3_dir):
    model = DINOv3Model(dinov3_dir)
    keys = list(model.state_dict())
    assert keys[:2] == ["image_mean", "image_std"]
    assert all(k.startswith("model.") for k in keys[2:])
    assert model.projection is None
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.model.training
    x = torch.randn(2, 1, 5, 24, 32)
    with torch.no_grad():
        features, projected = model(x)
        cls = model.model(pixel_values=model.preprocess_2d(x)).last_hidden_state[:, 0]
    assert features.shape == (2, 32)
    assert torch.equal(features, projected)
    assert torch.allclose(features, cls, atol=1e-6)

    head = torch.nn.Linear(32, 4)
    trainable = DINOv3Model(dinov3_dir, freeze=False, projection=head)
    assert all(p.requires_grad for p in trainable.parameters())
    trainable.train()
    assert trainable.model.training
    features, projected = trainable.eval()(x)
    assert torch.allclose(projected, head(features), atol=1e-6)


def test_openphenom_preprocess_to_uint8(phenom_dir):
    model = OpenPhenomModel(phenom_dir)
    x = torch.zeros(1, 2, 256, 256)
    x[0, 0, 0, :4] = torch.tensor([3.0, -3.0, 1.5, 7.0])  # image range [-3, 7]
    out = model.preprocess_2d(x)
    assert out.dtype == torch.uint8
    assert out.shape == (1, 2, 256, 256)
    # (v + 3) / 10 * 255, truncated
    assert out[0, 0, 0, :4].tolist() == [153, 0, 114, 255]
    assert out[0, 1, 5, 5].item() == 76
    assert model.preprocess_2d(torch.full((1, 1, 3, 64, 64), 2.0)).shape == (1, 1, 256, 256)
    assert model.preprocess_2d(torch.full((1, 1, 64, 64), 2.0)).max().item() == 0


def test_openphenom_forward_passes_input_to_predict(phenom_dir):
    model = OpenPhenomModel(phenom_dir)
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.model.training
    x = torch.randn(2, 3, 16, 16)
    features, again = model(x)
    assert features is again
    assert torch.equal(features, x.flatten(1))  # no preprocessing inside forward
    unfrozen = OpenPhenomModel(phenom_dir, freeze=False)
    assert all(p.requires_grad for p in unfrozen.parameters())
