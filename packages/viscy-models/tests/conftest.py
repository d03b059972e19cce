"""Shared fixtures: models are built once per session (CPU construction of ConvNeXt-T /
ResNet-50 takes seconds)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """One intra-op thread: these models are tiny per test, and on a shared, loaded CI box
    multi-threaded OpenMP kernels spend most of their time in barriers (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def contrastive_convnext():
    from viscy_models import ContrastiveEncoder

    torch.manual_seed(0)
    return ContrastiveEncoder(
        backbone="convnext_tiny",
        in_channels=2,
        in_stack_depth=15,
        stem_kernel_size=(5, 4, 4),
        stem_stride=(5, 4, 4),
        embedding_dim=768,
        projection_dim=128,
    )


@pytest.fixture(scope="session")
def unext2_default():
    from viscy_models import UNeXt2

    torch.manual_seed(0)
    return UNeXt2()


@pytest.fixture(scope="session")
def unext2_atto():
    from viscy_models import UNeXt2

    torch.manual_seed(0)
    return UNeXt2(in_channels=1, out_channels=2, in_stack_depth=10, backbone="convnextv2_atto")


def _assert_all_grads(model: torch.nn.Module, skip: tuple[str, ...] = ()) -> None:
    """Every trainable parameter (outside ``skip``) got a finite gradient."""
    missing = []
    for name, p in model.named_parameters():
        if not p.requires_grad or any(s in name for s in skip):
            continue
        if p.grad is None or not torch.isfinite(p.grad).all():
            missing.append(name)
    assert not missing, f"parameters without finite gradient: {missing[:10]}"


@pytest.fixture(scope="session")
def assert_all_grads():
    return _assert_all_grads
