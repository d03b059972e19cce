"""NT-Xent and NT-Xent HCL against pytorch-metric-learning and a brute-force loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from viscy_models import NTXentHCL, NTXentLoss
from viscy_models.contrastive.loss import NTXentHCL as NTXentHCLFromPath


def brute_force(embeddings, labels, temperature, beta):
    """Literal transcription of the loss definition, one positive pair at a time."""
    x = F.normalize(embeddings.double(), dim=1)
    n = len(labels)
    losses = []
    for i in range(n):
        negs = [k for k in range(n) if labels[k] != labels[i]]
        raw = [math.exp(beta * float(x[i] @ x[k])) for k in negs]
        weights = [len(negs) * r / sum(raw) for r in raw] if negs else []
        for p in range(n):
            if p == i or labels[p] != labels[i]:
                continue
            pos = math.exp(float(x[i] @ x[p]) / temperature)
            neg = sum(
                w * math.exp(float(x[i] @ x[k]) / temperature)
                for w, k in zip(weights, negs, strict=True)
            )
            losses.append(-math.log(pos / (pos + neg)))
    return sum(losses) / len(losses)


def pair_labels(batch):
    return torch.arange(batch).repeat(2)


def test_export_paths_are_the_same_class():
    assert NTXentHCL is NTXentHCLFromPath
    assert issubclass(NTXentHCL, NTXentLoss)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_beta_zero_equals_pytorch_metric_learning(temperature):
    from pytorch_metric_learning.losses import NTXentLoss as PMLNTXentLoss

    torch.manual_seed(0)
    emb = torch.randn(16, 32)
    labels = pair_labels(8)
    reference = PMLNTXentLoss(temperature=temperature)(emb, labels)
    ours_hcl = NTXentHCL(temperature=temperature, beta=0.0)(emb, labels)
    ours_plain = NTXentLoss(temperature=temperature)(emb, labels)
    torch.testing.assert_close(ours_hcl, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_plain, reference, rtol=1e-5, atol=1e-5)


def test_matches_pml_with_larger_groups():
    from pytorch_metric_learning.losses import NTXentLoss as PMLNTXentLoss

    torch.manual_seed(1)
    emb = torch.randn(12, 8)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4])  # label 4 has no positive
    torch.testing.assert_close(
        NTXentHCL(temperature=0.2, beta=0.0)(emb, labels),
        PMLNTXentLoss(temperature=0.2)(emb, labels),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize(("beta", "temperature"), [(0.0, 0.1), (0.5, 0.07), (2.0, 0.3)])
def test_matches_brute_force(beta, temperature):
    torch.manual_seed(2)
    emb = torch.randn(10, 6)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    loss = NTXentHCL(temperature=temperature, beta=beta)(emb, labels)
    assert loss.item() == pytest.approx(brute_force(emb, labels, temperature, beta), rel=1e-5)


def test_hard_negatives_raise_the_loss():
    torch.manual_seed(3)
    emb = torch.randn(32, 16)
    labels = pair_labels(16)
    plain = NTXentHCL(beta=0.0, temperature=0.5)(emb, labels)
    hard = NTXentHCL(beta=1.0, temperature=0.5)(emb, labels)
    assert hard > plain  # weights move onto the most similar (highest-loss) negatives


def test_bf16_stable_and_gradients_finite():
    torch.manual_seed(4)
    emb32 = torch.randn(64, 128)
    labels = pair_labels(32)
    loss_fn = NTXentHCL(temperature=0.07, beta=0.5)
    ref = loss_fn(emb32, labels)
    emb = emb32.bfloat16().requires_grad_(True)
    loss = loss_fn(emb, labels)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(ref.item(), rel=2e-2)
    loss.backward()
    assert emb.grad is not None
    assert torch.isfinite(emb.grad.float()).all()
    assert emb.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = loss_fn(torch.nn.Linear(128, 128)(emb32), labels)
    assert torch.isfinite(auto)


def test_identical_embeddings_do_not_overflow():
    emb = torch.ones(8, 4, requires_grad=True)
    loss = NTXentHCL(temperature=0.01, beta=5.0)(emb, pair_labels(4))
    assert loss.item() == pytest.approx(math.log(1 + 6), rel=1e-5)  # 6 equally weighted negatives
    loss.backward()
    assert torch.isfinite(emb.grad).all()


def test_no_positive_pairs_gives_zero_with_graph():
    emb = torch.randn(4, 3, requires_grad=True)
    loss = NTXentLoss()(emb, torch.arange(4))
    assert loss.item() == 0.0
    loss.backward()


def test_temperature_schedule():
    loss_fn = NTXentHCL(
        temperature=0.07,
        temperature_schedule="cosine",
        temperature_start=0.5,
        temperature_warmup_epochs=10,
    )
    assert loss_fn.current_temperature == pytest.approx(0.5)
    loss_fn.set_epoch(5)
    assert loss_fn.current_temperature == pytest.approx((0.5 + 0.07) / 2)
    loss_fn.set_epoch(50)
    assert loss_fn.current_temperature == pytest.approx(0.07)
    assert NTXentHCL(temperature=0.2).current_temperature == 0.2


def test_invalid_arguments():
    with pytest.raises(TypeError, match="margin"):  # rejected by pytorch-metric-learning
        NTXentHCL(margin=0.2)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        NTXentHCL(beta=-1.0)
    with pytest.raises(ValueError, match="labels must have shape"):
        NTXentLoss()(torch.randn(4, 3), torch.arange(3))


def test_subclass_of_pytorch_metric_learning_and_0_1_0_step():
    from pytorch_metric_learning.losses import NTXentLoss as PMLNTXentLoss

    assert issubclass(NTXentLoss, PMLNTXentLoss)
    assert issubclass(NTXentHCL, PMLNTXentLoss)
    loss = NTXentHCL(
        temperature=0.1,
        temperature_schedule="cosine",
        temperature_start=0.5,
        temperature_warmup_epochs=10,
    )
    loss.step(5)  # 0.1.0 name; same as set_epoch
    assert loss.current_temperature == pytest.approx(0.1 + 0.4 * 0.5)
    loss.set_epoch(10)
    assert loss.current_temperature == pytest.approx(0.1)
    # pytorch-metric-learning options and call forms go to its implementation
    torch.manual_seed(0)
    emb, labels = torch.randn(8, 4), pair_labels(4)
    pml = NTXentLoss(temperature=0.2, reducer=None)
    reference = PMLNTXentLoss(temperature=0.2, reducer=None)(emb, labels)
    torch.testing.assert_close(pml(emb, labels), reference)
    from pytorch_metric_learning.reducers import MeanReducer

    with pytest.raises(ValueError, match="beta"):
        NTXentHCL(beta=0.5, reducer=MeanReducer())(emb, labels)
    # an option left at pytorch-metric-learning's default (as jsonargparse passes every
    # inherited default) is not a pytorch-metric-learning call
    assert torch.isfinite(NTXentHCL(beta=0.5, reducer=None, distance=None)(emb, labels))
