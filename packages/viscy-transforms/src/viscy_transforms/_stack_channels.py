"""Stack single-channel keys into ``source``/``target`` tensors."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.transforms import MapTransform

from viscy_transforms._typing import ChannelMap

__all__ = ["BatchedStackChannelsd", "StackChannelsd"]


class StackChannelsd(MapTransform):
    """Concatenate channel keys of one sample along the channel axis, per a channel map.

    ``{"source": ["Phase3D"], "target": ["GFP", "RFP"]}`` turns keys ``Phase3D``, ``GFP`` and
    ``RFP`` (each ``(1, Z, Y, X)``) into ``source`` ``(1, Z, Y, X)`` and ``target``
    ``(2, Z, Y, X)``. As in 0.1.0 the result holds only the output keys: the channel keys and
    any other entries of the sample (e.g. ``norm_meta``) are dropped, so stack last.

    Parameters
    ----------
    channel_map : ChannelMap
        Output key -> channel keys, in stacking order.
    """

    channel_dim = 0

    def __init__(self, channel_map: ChannelMap) -> None:
        if not channel_map:
            raise ValueError("channel_map must map at least one output key to channel keys.")
        for out_key, channels in channel_map.items():
            if isinstance(channels, str) or not channels:
                raise ValueError(
                    f"channel_map['{out_key}'] must be a non-empty list of channel keys, "
                    f"got {channels!r}."
                )
        keys = [ch for channels in channel_map.values() for ch in channels]
        super().__init__(list(dict.fromkeys(keys)))
        self.channel_map = {k: list(v) for k, v in channel_map.items()}

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = data
        out: dict[Hashable, torch.Tensor] = {}
        for out_key, channels in self.channel_map.items():
            missing = [ch for ch in channels if ch not in d]
            if missing:
                raise KeyError(
                    f"channel(s) {missing} for '{out_key}' are missing from the sample "
                    f"(keys: {sorted(map(str, d))})."
                )
            out[out_key] = torch.cat([d[ch] for ch in channels], dim=self.channel_dim)
        return out


class BatchedStackChannelsd(StackChannelsd):
    """:class:`StackChannelsd` for batches: channel keys are (B, 1, Z, Y, X), stacked on dim 1.

    Parameters
    ----------
    channel_map : ChannelMap
        Output key -> channel keys, in stacking order.
    """

    channel_dim = 1
