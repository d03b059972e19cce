"""Contract every batched random dictionary transform must honour."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest
import torch
from monai.transforms import Compose, MapTransform

import viscy_transforms as vt

KEYS = ["a", "b"]

# name -> factory(prob) building the transform on KEYS of (B, 2, 6, 16, 16) tensors.
RANDOM_DICT: dict[str, Callable[[float], MapTransform]] = {
    "BatchedRandAffined": lambda p: vt.BatchedRandAffined(
        KEYS, prob=p, rotate_range=[3.14, 0.0, 0.0], scale_range=(0.7, 1.3)
    ),
    "BatchedRand3DElasticd": lambda p: vt.BatchedRand3DElasticd(
        KEYS, sigma_range=(1.0, 2.0), magnitude_range=(2.0, 4.0), prob=p
    ),
    "BatchedRandFlipd": lambda p: vt.BatchedRandFlipd(KEYS, spatial_axes=[0, 1, 2], prob=p),
    "BatchedRandAdjustContrastd": lambda p: vt.BatchedRandAdjustContrastd(
        KEYS, gamma=(0.5, 2.0), prob=p
    ),
    "BatchedRandScaleIntensityd": lambda p: vt.BatchedRandScaleIntensityd(
        KEYS, factors=0.5, prob=p
    ),
    "BatchedRandGaussianSmoothd": lambda p: vt.BatchedRandGaussianSmoothd(
        KEYS, sigma_x=(0.5, 2.0), sigma_y=(0.5, 2.0), sigma_z=(0.0, 1.0), prob=p
    ),
    "BatchedRandGaussianNoised": lambda p: vt.BatchedRandGaussianNoised(KEYS, prob=p, std=0.5),
    "BatchedRandHistogramShiftd": lambda p: vt.BatchedRandHistogramShiftd(
        KEYS, shift_range=(-0.5, 0.5), prob=p
    ),
    "BatchedRandInvertIntensityd": lambda p: vt.BatchedRandInvertIntensityd(KEYS, prob=p),
    "BatchedRandLocalPixelShufflingd": lambda p: vt.BatchedRandLocalPixelShufflingd(
        KEYS, patch_size=3, shuffle_prob=0.5, prob=p
    ),
    "BatchedRandSharpend": lambda p: vt.BatchedRandSharpend(KEYS, alpha_range=(0.5, 2.0), prob=p),
    "BatchedRandZStackShiftd": lambda p: vt.BatchedRandZStackShiftd(KEYS, max_shift=3, prob=p),
    "BatchedRandSpatialCropd": lambda p: vt.BatchedRandSpatialCropd(KEYS, roi_size=(4, 8, 8)),
    "BatchedRandWeightedCropd": lambda p: vt.BatchedRandWeightedCropd(
        KEYS, w_key="a", spatial_size=(4, 8, 8)
    ),
}
# Crops have no probability; their output shape differs from the input's.
CROPS = {"BatchedRandSpatialCropd", "BatchedRandWeightedCropd"}
# Few possible outcomes per sample (a random shift may be zero, a flip pattern may repeat).
DISCRETE = {"BatchedRandFlipd", "BatchedRandInvertIntensityd", "BatchedRandZStackShiftd"}
WITH_PROB = sorted(set(RANDOM_DICT) - CROPS)


def _sample(img: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"a": img, "b": img.clone(), "meta": "kept"}


def _seeded(name: str, prob: float, seed: int = 0) -> MapTransform:
    transform = RANDOM_DICT[name](prob)
    transform.set_random_state(seed)
    return transform


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("name", sorted(RANDOM_DICT))
def test_shape_dtype_device(name, dtype, device, batch):
    img = batch.to(device=device, dtype=dtype)
    out = _seeded(name, 1.0)(_sample(img))
    assert out["meta"] == "kept"
    for key in KEYS:
        assert out[key].dtype == dtype
        assert out[key].device == img.device
        assert torch.isfinite(out[key].float()).all()
        if name in CROPS:
            assert out[key].shape == (4, 2, 4, 8, 8)
        else:
            assert out[key].shape == img.shape


@pytest.mark.parametrize("name", sorted(RANDOM_DICT))
def test_same_seed_same_output_other_seed_differs(name, batch):
    first = _seeded(name, 0.5, seed=3)(_sample(batch))["a"]
    again = _seeded(name, 0.5, seed=3)(_sample(batch))["a"]
    other = [_seeded(name, 0.5, seed=s)(_sample(batch))["a"] for s in (4, 5, 6)]
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert any(not torch.equal(first, o) for o in other)


@pytest.mark.parametrize("name", sorted(RANDOM_DICT))
def test_each_sample_gets_its_own_parameters(name):
    one = torch.rand((1, 2, 6, 16, 16), generator=torch.Generator().manual_seed(1))
    img = one.expand(8, -1, -1, -1, -1).contiguous()
    out = _seeded(name, 0.5 if name in DISCRETE else 1.0)(_sample(img))["a"]
    assert any(not torch.equal(out[0], out[i]) for i in range(1, 8))


@pytest.mark.parametrize("name", sorted(RANDOM_DICT))
def test_keys_of_a_sample_share_parameters(name, batch):
    out = _seeded(name, 1.0)(_sample(batch))
    torch.testing.assert_close(out["a"], out["b"], rtol=0, atol=0)


@pytest.mark.parametrize("name", WITH_PROB)
def test_prob_zero_is_identity(name, batch):
    out = _seeded(name, 0.0)(_sample(batch))
    for key in KEYS:
        torch.testing.assert_close(out[key], batch, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(set(WITH_PROB) - {"BatchedRandZStackShiftd"}))
def test_prob_one_changes_every_sample(name, batch):
    out = _seeded(name, 1.0)(_sample(batch))["a"]
    for i in range(batch.shape[0]):
        assert not torch.allclose(out[i], batch[i]), f"sample {i} unchanged"


@pytest.mark.parametrize("name", WITH_PROB)
@pytest.mark.parametrize("prob", [-0.1, 1.5])
def test_invalid_probability_is_rejected(name, prob):
    with pytest.raises(ValueError, match="prob"):
        RANDOM_DICT[name](prob)


@pytest.mark.parametrize("name", sorted(RANDOM_DICT))
def test_missing_key_is_named(name, batch):
    with pytest.raises(KeyError, match="'?b'?"):
        _seeded(name, 1.0)({"a": batch})


@pytest.mark.parametrize("name", sorted(RANDOM_DICT))
def test_pickled_transform_continues_the_same_stream(name, batch):
    transform = _seeded(name, 0.5)
    transform(_sample(batch))  # advance the generator before pickling
    clone = pickle.loads(pickle.dumps(transform))
    torch.testing.assert_close(transform(_sample(batch))["a"], clone(_sample(batch))["a"])


def test_compose_seeds_every_transform(batch):
    def chain() -> Compose:
        return Compose([RANDOM_DICT[n](0.5) for n in WITH_PROB]).set_random_state(7)

    torch.testing.assert_close(chain()(_sample(batch))["a"], chain()(_sample(batch))["a"])


def test_unseeded_transforms_follow_torch_manual_seed(batch):
    torch.manual_seed(11)
    first = RANDOM_DICT["BatchedRandAffined"](1.0)(_sample(batch))["a"]
    torch.manual_seed(11)
    again = RANDOM_DICT["BatchedRandAffined"](1.0)(_sample(batch))["a"]
    torch.testing.assert_close(first, again)


@pytest.mark.parametrize("name", sorted(RANDOM_DICT))
def test_input_is_not_modified(name, batch):
    original = batch.clone()
    sample = _sample(batch)
    _seeded(name, 1.0)(sample)
    assert torch.equal(batch, original)
    assert torch.equal(sample["b"], original)
