"""INFER-01/03: a committed checkpoint reloads and reproduces its reference embeddings.

The checkpoint was written by Lightning's ``ModelCheckpoint`` during a real ``Trainer.fit``
of a ``ContrastiveModule`` whose encoder is a ``ContrastiveEncoder`` at toy widths
(``TinyContrastiveEncoder``, with the state-dict keys of ``ContrastiveEncoder("convnext_tiny")``).
Across machines the embeddings must match within ``rtol=1e-4, atol=1e-5`` (float32 kernels
may sum in another order on another CPU); on one machine, two runs must match exactly.
Regenerate the files with ``applications/dynaclr/scripts/make_reference_embeddings.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader

from dynaclr import ContrastiveModule, TinyContrastiveEncoder
from viscy_models import ContrastiveEncoder

REFERENCE_DIR = Path(__file__).parent / "data" / "reference"
ENCODER_KWARGS = {
    "in_channels": 2,
    "in_stack_depth": 5,
    "dims": (8, 12, 16, 24),
    "projection_dim": 8,
}
#: Keys and shapes of ``ContrastiveEncoder("convnext_tiny", ...)`` (viscy-models' fixture).
CONVNEXT_TINY_KEYS = (
    Path(__file__).parents[3]
    / "packages/viscy-models/tests/fixtures/state_dict/ContrastiveEncoder_convnext_tiny.json"
)


def _load():
    return ContrastiveModule.load_from_checkpoint(
        REFERENCE_DIR / "tiny_contrastive.ckpt",
        map_location="cpu",
        encoder=TinyContrastiveEncoder(**ENCODER_KWARGS),
        loss_function=nn.TripletMarginLoss(margin=0.5),
    )


def test_checkpoint_keys_match_exactly():
    state = torch.load(REFERENCE_DIR / "tiny_contrastive.ckpt", map_location="cpu")["state_dict"]
    module = ContrastiveModule(TinyContrastiveEncoder(**ENCODER_KWARGS))
    result = module.load_state_dict(state, strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys == []
    assert all(key.startswith("model.") for key in state)


def test_checkpoint_is_a_contrastive_encoder_with_convnext_tiny_keys():
    import json

    encoder = TinyContrastiveEncoder(**ENCODER_KWARGS)
    assert isinstance(encoder, ContrastiveEncoder)
    state = torch.load(REFERENCE_DIR / "tiny_contrastive.ckpt", map_location="cpu")["state_dict"]
    full = json.loads(CONVNEXT_TINY_KEYS.read_text())["state_dict"]
    tiny = {key.removeprefix("model."): value for key, value in state.items()}
    assert set(tiny) == set(full)
    for key, value in tiny.items():  # same modules, narrower: same rank, never wider
        shape = full[key]
        assert value.ndim == len(shape), key
        assert all(a <= b for a, b in zip(value.shape, shape, strict=True)), key
    assert (REFERENCE_DIR / "tiny_contrastive.ckpt").stat().st_size < 1_000_000


#: Tolerances of the comparison with the committed embeddings (another CPU may differ).
RTOL, ATOL = 1e-4, 1e-5


def _predict(module) -> dict:
    reference = torch.load(REFERENCE_DIR / "reference_embeddings.pt", map_location="cpu")
    samples = [
        {"anchor": x, "index": {"fov_name": "A/1/0", "track_id": i, "t": 0}}
        for i, x in enumerate(reference["inputs"])
    ]
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (prediction,) = trainer.predict(module, DataLoader(samples, batch_size=len(samples)))
    assert prediction["index"]["track_id"].tolist() == list(range(len(samples)))
    return prediction


def test_checkpoint_was_written_by_model_checkpoint():
    checkpoint = torch.load(
        REFERENCE_DIR / "tiny_contrastive.ckpt", map_location="cpu", weights_only=False
    )
    assert checkpoint["global_step"] == 4
    assert any("ModelCheckpoint" in str(key) for key in checkpoint["callbacks"])
    assert checkpoint["optimizer_states"]


def test_reference_embeddings_reproduced_within_tolerance():
    reference = torch.load(REFERENCE_DIR / "reference_embeddings.pt", map_location="cpu")
    prediction = _predict(_load())
    torch.testing.assert_close(prediction["features"], reference["features"], rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(
        prediction["projections"], reference["projections"], rtol=RTOL, atol=ATOL
    )


def test_embeddings_exact_from_run_to_run():
    first = _predict(_load())
    second = _predict(_load())
    assert torch.equal(first["features"], second["features"])
    assert torch.equal(first["projections"], second["projections"])


def test_reference_differs_from_fresh_weights():
    """The reference is of the trained checkpoint, not of any initialization."""
    reference = torch.load(REFERENCE_DIR / "reference_embeddings.pt", map_location="cpu")
    fresh = ContrastiveModule(TinyContrastiveEncoder(**ENCODER_KWARGS)).eval()
    with torch.inference_mode():
        features, _ = fresh(reference["inputs"])
    assert not torch.allclose(features, reference["features"])
