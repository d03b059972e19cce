"""Channel dropout: zero whole channels of batched patches at random during training."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["ChannelDropout"]


class ChannelDropout(nn.Module):
    """Randomly zero whole channels of a batch, independently per sample and channel.

    Works on batched tensors ``(B, C, ...)`` (e.g. ``(B, C, Z, Y, X)``) on any device. Active
    only in training mode (``module.train()``); in eval mode the input is returned as is.
    Unlike :class:`torch.nn.Dropout` the kept values are not rescaled: a dropped channel is
    a missing channel, not noise.

    Parameters
    ----------
    channels : list[int]
        Indices along the channel axis that may be dropped (e.g. ``[1]`` for the
        fluorescence channel of a Phase + fluorescence input). Negative indices count from
        the end.
    p : float
        Probability of dropping each listed channel of each sample.
    """

    def __init__(self, channels: Sequence[int], p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"ChannelDropout probability p must be in [0, 1], got {p}")
        self.channels = [int(c) for c in channels]
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"ChannelDropout channels must be unique, got {self.channels}")
        self.p = float(p)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, p={self.p}"

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` with each listed channel of each sample zeroed with probability p."""
        if not self.training or self.p == 0.0 or not self.channels:
            return x
        if x.ndim < 2:
            raise ValueError(f"ChannelDropout expects (B, C, ...) input, got {tuple(x.shape)}")
        n_channels = x.shape[1]
        bad = [c for c in self.channels if not -n_channels <= c < n_channels]
        if bad:
            raise ValueError(
                f"ChannelDropout channels {bad} out of range for input with {n_channels} channels"
            )
        index = torch.tensor(self.channels, device=x.device) % n_channels
        drop = torch.rand(x.shape[0], len(self.channels), device=x.device) < self.p
        keep = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
        keep[:, index] = (~drop).to(x.dtype)
        return x * keep.view(*x.shape[:2], *([1] * (x.ndim - 2)))
