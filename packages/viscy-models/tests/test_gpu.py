"""CUDA + bf16 autocast smoke tests (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_unext2_cuda_bf16(unext2_atto):
    model = unext2_atto.cuda().train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(torch.randn(2, 1, 10, 64, 64, device="cuda"))
    assert out.shape == (2, 2, 10, 64, 64)
    out.float().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.cpu()


def test_contrastive_cuda_bf16_with_hcl(contrastive_convnext):
    from viscy_models import NTXentHCL

    model = contrastive_convnext.cuda().train()
    x = torch.randn(8, 2, 15, 64, 64, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        _, proj = model(x)
        loss = NTXentHCL()(proj, torch.arange(4, device="cuda").repeat(2))
    loss.backward()
    assert torch.isfinite(loss)
    model.cpu()
