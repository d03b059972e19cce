"""Triplets whose crops come as named channel sets (e.g. label-free and fluorescence).

:class:`PairedChannelTripletDataModule` is a :class:`~viscy_data.triplet.TripletDataModule`
that reads the union of the channels of its ``channel_groups`` once per cell and, after
normalization, augmentation and the final crop on the device, hands every view
(``anchor``, ``positive``, ``negative``) to the model as ``{group: (B, C_group, Z, Y, X)}``:
the two modalities of a cross-modal (CLIP-style) model, cut from the same crop, so they show
the same cell, at the same time, under the same spatial augmentation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from viscy_data.triplet import TripletDataModule

__all__ = ["PairedChannelTripletDataModule"]

_VIEWS = ("anchor", "positive", "negative")


class PairedChannelTripletDataModule(TripletDataModule):
    """Triplets split into named channel sets.

    Parameters
    ----------
    channel_groups : dict[str, list[str]]
        Group name to its channels, e.g. ``{"label_free": ["Phase3D"], "fluorescence":
        ["GFP"]}``. A channel may be in several groups. The channels read are the groups'
        channels in order of first appearance.
    **kwargs
        Every other argument of :class:`~viscy_data.triplet.TripletDataModule` (except
        ``source_channel``, which the groups define).
    """

    def __init__(self, channel_groups: dict[str, list[str]], **kwargs: Any) -> None:
        if "source_channel" in kwargs:
            raise ValueError(
                "PairedChannelTripletDataModule reads the channels of channel_groups; "
                "do not pass source_channel"
            )
        if len(channel_groups) < 1:
            raise ValueError("channel_groups needs at least one group")
        groups = {str(name): [str(c) for c in chans] for name, chans in channel_groups.items()}
        empty = [name for name, chans in groups.items() if not chans]
        if empty:
            raise ValueError(f"channel_groups {empty} have no channels")
        channels = list(dict.fromkeys(c for chans in groups.values() for c in chans))
        super().__init__(source_channel=channels, **kwargs)
        self.channel_groups = groups
        self._group_index = {
            name: torch.tensor([channels.index(c) for c in chans]) for name, chans in groups.items()
        }

    def split_channels(self, patch: Tensor) -> dict[str, Tensor]:
        """``{group: patch[:, group channels]}`` of a (B, C, Z, Y, X) patch."""
        return {
            name: patch.index_select(1, index.to(patch.device))
            for name, index in self._group_index.items()
        }

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalize, augment and crop as ``TripletDataModule``, then split each view."""
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        if isinstance(batch, Tensor):  # example_input_array
            return batch
        for key in _VIEWS:
            if key in batch:
                batch[key] = self.split_channels(batch[key])
        return batch
