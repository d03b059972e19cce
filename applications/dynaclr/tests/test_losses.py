"""LOSS-01/02/03 through dynaclr's re-exports of the viscy-models losses."""

from __future__ import annotations

import pytest
import torch


def test_reexports_are_the_viscy_models_classes():
    import dynaclr
    import viscy_models.contrastive.loss as loss_module

    assert dynaclr.NTXentHCL is loss_module.NTXentHCL
    assert dynaclr.NTXentLoss is loss_module.NTXentLoss
    assert {"NTXentHCL", "NTXentLoss", "ContrastiveModule"} <= set(dynaclr.__all__)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_hcl_beta_zero_equals_ntxent(temperature):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    from dynaclr import NTXentHCL

    g = torch.Generator().manual_seed(0)
    embeddings = torch.randn(16, 12, generator=g)
    labels = torch.arange(8).repeat(2)
    hcl = NTXentHCL(temperature=temperature, beta=0.0)(embeddings, labels)
    reference = pml.NTXentLoss(temperature=temperature)(embeddings, labels)
    torch.testing.assert_close(hcl, reference, rtol=1e-5, atol=1e-6)


def test_hcl_is_a_drop_in_loss_function():
    from dynaclr import ContrastiveModule, NTXentHCL, TinyEncoder

    module = ContrastiveModule(TinyEncoder(width=4), loss_function=NTXentHCL(beta=0.5))
    assert module.uses_pair_loss
    module.log = lambda *a, **k: None
    module.log_dict = lambda *a, **k: None
    x = torch.rand(4, 2, 1, 16, 16)
    batch = {"anchor": x, "positive": x + 0.01 * torch.randn_like(x)}
    loss = module._contrastive_step(batch, "train")
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert module.model.embedding.weight.grad is not None
    assert module.model.embedding.weight.grad.abs().sum() > 0
