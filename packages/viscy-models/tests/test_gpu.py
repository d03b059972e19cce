"""CUDA + bf16 autocast smoke tests (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture
def on_cuda():
    """Move a shared (session) model to CUDA for one test and back afterwards."""
    moved = []

    def move(model: torch.nn.Module) -> torch.nn.Module:
        moved.append(model)
        return model.cuda()

    yield move
    for model in moved:
        model.zero_grad(set_to_none=True)
        model.cpu()


def test_unext2_cuda_bf16(unext2_atto, on_cuda):
    model = on_cuda(unext2_atto).train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(torch.randn(2, 1, 10, 64, 64, device="cuda"))
    assert out.shape == (2, 2, 10, 64, 64)
    out.float().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_contrastive_cuda_bf16_with_hcl(contrastive_convnext, on_cuda):
    from viscy_models import NTXentHCL

    model = on_cuda(contrastive_convnext).train()
    x = torch.randn(8, 2, 15, 64, 64, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        _, proj = model(x)
        loss = NTXentHCL()(proj, torch.arange(4, device="cuda").repeat(2))
    loss.backward()
    assert torch.isfinite(loss)
