"""What the two triplet DataModules (tracked plates and ``.npy`` cell series) share.

Both serve whole batches of anchor / positive / negative patches with thread workers and, on
the device, normalize (+ augment) them channel by channel and center-crop them to
``final_yx_patch_size``; both split their items (FOVs or files) into training and validation
by ``split_ratio`` with a generator seeded by ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from viscy_data._patch_ops import ChannelWiseBatchTransform
from viscy_data.distributed import rank_sampler
from viscy_data.hcs import HCSDataModule
from viscy_data.loading import thread_data_loader

_Item = TypeVar("_Item")
TRIPLET_KEYS: tuple[str, ...] = ("anchor", "positive", "negative")


def split_items(items: Sequence[_Item], ratio: float, seed: int) -> tuple[list, list]:
    """Shuffle ``items`` with ``seed`` and split them by ``ratio`` (both parts sorted).

    Training keeps at least one item, and validation one as soon as there are two.
    """
    order = np.random.default_rng(seed).permutation(len(items))
    n_train = int(len(items) * ratio)
    n_train = min(max(n_train, 1), max(len(items) - 1, 1))
    shuffled = [items[i] for i in order]
    return sorted(shuffled[:n_train]), sorted(shuffled[n_train:])


class TripletDataModuleBase(HCSDataModule):
    """Thread loaders and the channel-wise device transform of the triplet DataModules.

    Subclasses set ``final_yx_patch_size`` and the datasets; ``collate_fn`` is the loaders'
    collate function (None: torch's default).
    """

    collate_fn: Callable | None = None
    final_yx_patch_size: tuple[int, int]

    def _loader(self, dataset: Dataset, shuffle: bool) -> Any:
        # DDP: shard here, whatever use_distributed_sampler says (Lightning keeps it)
        sampler = rank_sampler(
            getattr(self, "trainer", None), dataset, shuffle, self.seed, drop_last=shuffle
        )
        return thread_data_loader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            collate_fn=type(self).collate_fn,
            drop_last=shuffle,  # training drops the last partial batch, as in 0.1.0
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            prefetch_factor=self.prefetch_factor,
        )

    def train_dataloader(self) -> Any:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> Any:
        if getattr(self, "val_dataset", None) is None:
            return []
        return self._loader(self.val_dataset, shuffle=False)

    def predict_dataloader(self) -> Any:
        return self._loader(self.predict_dataset, shuffle=False)

    def _build_device_transform(self, stage: str | None) -> ChannelWiseBatchTransform:
        """Normalize (+ augment, see ``_augmenting``) each patch channel by channel, then
        center-crop it to ``final_yx_patch_size``."""
        transforms: list[Callable] = list(self.normalizations)
        if self._augmenting(stage):
            transforms += self.augmentations
        return ChannelWiseBatchTransform(
            transforms, self.source_channel, TRIPLET_KEYS, self.final_yx_patch_size
        )
