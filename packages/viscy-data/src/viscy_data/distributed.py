"""Distributed sampling that keeps each rank's samples together."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, DistributedSampler

__all__ = ["ShardedDistributedSampler"]


class ShardedDistributedSampler(DistributedSampler):
    """Give each rank one contiguous shard of the dataset, shuffled within itself.

    Neighbouring samples of a dataset often come from the same FOV, so contiguous shards
    keep each rank's reads local (better chunk-cache reuse) while shuffling still mixes
    the order within the shard every epoch. All ranks get the same number of samples:
    the dataset is padded by repeating its first samples (or truncated if ``drop_last``).

    Parameters
    ----------
    dataset : Dataset
        Dataset with ``__len__``.
    num_replicas : int, optional
        Number of ranks; the world size by default.
    rank : int, optional
        This rank; the current rank by default.
    shuffle : bool
        Shuffle within the shard each epoch (call ``set_epoch``).
    seed : int
        Base seed of the shuffle (the same on all ranks).
    drop_last : bool
        Drop the tail instead of padding to a multiple of ``num_replicas``.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        indices = list(range(n))
        if self.drop_last:
            indices = indices[: self.total_size]
        elif self.total_size > n:
            repeats = math.ceil((self.total_size - n) / max(n, 1))
            indices += (indices * repeats)[: self.total_size - n]
        start = self.rank * self.num_samples
        shard = torch.tensor(indices[start : start + self.num_samples], dtype=torch.long)
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch + self.rank * 7919)
            shard = shard[torch.randperm(len(shard), generator=generator)]
        return iter(shard.tolist())
