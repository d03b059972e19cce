"""Checkpoint compatibility: keys, shapes and parameter counts of the 0.1.0 checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import viscy_models

STATE_DICT_FILES = sorted((Path(__file__).parent / "fixtures" / "state_dict").glob("*.json"))


def load_spec(path: Path) -> dict:
    return json.loads(path.read_text())


def test_fixture_files_present():
    # every architecture of shared/spec/state_dict (the 0.1.0 checkpoints)
    assert len(STATE_DICT_FILES) == 19


@pytest.mark.parametrize("path", STATE_DICT_FILES, ids=lambda p: p.stem)
def test_state_dict_matches_checkpoint_format(path):
    spec = load_spec(path)
    cls = getattr(viscy_models, spec["class"])
    with torch.device("meta"):
        model = cls(**spec["kwargs"])
    state = {k: list(v.shape) for k, v in model.state_dict().items()}
    expected = spec["state_dict"]
    assert sorted(set(expected) - set(state)) == [], "missing keys"
    assert sorted(set(state) - set(expected)) == [], "unexpected keys"
    wrong = {k: (state[k], v) for k, v in expected.items() if state[k] != v}
    assert wrong == {}, "shape mismatch (ours, checkpoint)"
    assert sum(p.numel() for p in model.parameters()) == spec["n_params"]
    # same order as the checkpoint, so state-dict diffs read naturally
    assert list(state) == list(expected)


@pytest.mark.parametrize("name", ["Unet2d_default", "BetaVaeMonai_2d", "ResNet3dEncoder_resnet18"])
def test_checkpoint_round_trip_strict(name, tmp_path):
    """A checkpoint written from the spec's shapes loads strictly into a fresh model."""
    spec = load_spec(next(p for p in STATE_DICT_FILES if p.stem == name))
    cls = getattr(viscy_models, spec["class"])
    gen = torch.Generator().manual_seed(0)
    ckpt = {
        k: (torch.randn(shape, generator=gen) if shape else torch.tensor(3))
        for k, shape in spec["state_dict"].items()
    }
    torch.save({"state_dict": ckpt}, tmp_path / "model.ckpt")
    model = cls(**spec["kwargs"])
    loaded = torch.load(tmp_path / "model.ckpt", weights_only=True)["state_dict"]
    result = model.load_state_dict(loaded, strict=True)
    assert not result.missing_keys
    assert not result.unexpected_keys
    first = next(iter(spec["state_dict"]))
    assert torch.equal(model.state_dict()[first], ckpt[first])
