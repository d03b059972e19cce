"""Shared fixtures: tiny batches and the list of devices to test on."""

from __future__ import annotations

import pytest
import torch

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        ],
    ),
]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each device the transforms must work on (CUDA tests skip without a GPU)."""
    return torch.device(request.param)


@pytest.fixture
def batch() -> torch.Tensor:
    """A (4, 2, 6, 16, 16) float32 batch of random intensities."""
    return torch.rand((4, 2, 6, 16, 16), generator=torch.Generator().manual_seed(0))
