"""ChannelDropout on batched (B, C, Z, Y, X) tensors."""

from __future__ import annotations

import pytest
import torch

from viscy_data.channel_dropout import ChannelDropout


def _batch(b: int = 400) -> torch.Tensor:
    return torch.rand(b, 3, 2, 4, 4) + 0.5  # strictly positive: zeros only from dropout


def test_p_one_zeros_listed_channels_only():
    x = _batch(8)
    out = ChannelDropout(channels=[1], p=1.0).train()(x)
    assert out.shape == x.shape
    assert torch.all(out[:, 1] == 0)
    assert torch.equal(out[:, [0, 2]], x[:, [0, 2]])
    assert torch.all(x[:, 1] > 0)  # input untouched


def test_eval_mode_is_identity():
    x = _batch(8)
    module = ChannelDropout(channels=[0, 1], p=1.0).eval()
    assert module(x) is x


def test_drop_rate_and_per_sample_independence():
    torch.manual_seed(0)
    x = _batch()
    out = ChannelDropout(channels=[1, 2], p=0.3).train()(x)
    dropped = (out[:, 1:].flatten(2) == 0).all(dim=2)  # (B, 2)
    # whole channels: either all zero or untouched
    partial = (out[:, 1:].flatten(2) == 0).any(dim=2) & ~dropped
    assert not partial.any()
    rate = dropped.float().mean().item()
    assert abs(rate - 0.3) < 0.06
    # channels drop independently: not always together
    assert (dropped[:, 0] != dropped[:, 1]).any()
    assert torch.equal(out[:, 0], x[:, 0])


def test_negative_index_and_errors():
    x = _batch(4)
    out = ChannelDropout(channels=[-1], p=1.0).train()(x)
    assert torch.all(out[:, 2] == 0)
    with pytest.raises(ValueError, match="out of range"):
        ChannelDropout(channels=[5], p=0.5).train()(x)
    with pytest.raises(ValueError, match="probability"):
        ChannelDropout(channels=[0], p=1.5)


def test_gradients_flow_through_kept_channels():
    x = _batch(4).requires_grad_()
    ChannelDropout(channels=[1], p=1.0).train()(x).sum().backward()
    assert torch.all(x.grad[:, 1] == 0)
    assert torch.all(x.grad[:, 0] == 1)
