"""Distributed sampling that keeps each rank's samples together."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

__all__ = [
    "ShardedDistributedSampler",
    "WorkerShardedSampler",
    "rank_sampler",
    "uses_lightning_sampler",
]


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


class WorkerShardedSampler(Sampler[int]):
    """Shuffled sample order in which each DataLoader worker reads one contiguous shard.

    A DataLoader hands batches to its worker processes in turn (batch ``i`` to worker
    ``i % num_workers``). This sampler orders indices so that batch ``i`` comes from shard
    ``i % num_workers`` of the dataset (contiguous index ranges, i.e. neighbouring FOVs and
    timepoints), shuffled within the shard every epoch. Each worker then decodes and caches
    only its own shard's chunks instead of every worker decoding the same chunks. Shards are
    padded with random repeats to the same whole number of batches, which keeps the
    batch-to-worker assignment aligned from one epoch to the next.

    Parameters
    ----------
    num_samples : int
        Length of the dataset.
    batch_size : int
        Batch size of the DataLoader (shards are cut into batches of this size).
    num_workers : int
        Number of DataLoader worker processes (1 gives a plain shuffle, padded to whole
        batches).
    seed : int
        Seed of the shuffle; epoch ``e`` uses ``seed + e``.
    """

    def __init__(self, num_samples: int, batch_size: int, num_workers: int, seed: int = 0):
        if num_samples < 1 or batch_size < 1:
            raise ValueError(
                f"need num_samples >= 1 and batch_size >= 1, got {num_samples}, {batch_size}"
            )
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.num_shards = max(1, min(int(num_workers), self.num_samples))
        self.seed = int(seed)
        self.epoch = 0
        self._iterations = 0
        bounds = np.linspace(0, self.num_samples, self.num_shards + 1).astype(int)
        self._shards = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        largest = max(b - a for a, b in self._shards)
        self._batches_per_shard = math.ceil(largest / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Seed the next epoch's shuffle (called by Lightning)."""
        self.epoch = int(epoch)
        self._iterations = 0

    def __len__(self) -> int:
        return self.num_shards * self._batches_per_shard * self.batch_size

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch, self._iterations])
        self._iterations += 1
        per_shard = self._batches_per_shard * self.batch_size
        orders = []
        for start, stop in self._shards:
            order = rng.permutation(np.arange(start, stop))
            pad = per_shard - len(order)
            if pad > 0:
                order = np.concatenate([order, rng.choice(order, size=pad, replace=True)])
            orders.append(order.reshape(self._batches_per_shard, self.batch_size))
        # batch i of the epoch comes from shard i % num_shards
        interleaved = np.stack(orders, axis=1).reshape(-1)
        return iter(interleaved.tolist())


def rank_sampler(
    trainer: object, dataset: Dataset, shuffle: bool, seed: int = 0, drop_last: bool = False
) -> ShardedDistributedSampler | None:
    """This rank's sampler when ``trainer`` runs on several processes, else None.

    A DataModule passes it to its loaders, so that every rank reads the same number of
    batches and its own samples whether Lightning's ``use_distributed_sampler`` is on (it keeps
    a ``DistributedSampler`` it finds) or off (nothing else would shard). Training loaders use
    ``drop_last=True``: no sample is read by two ranks in one epoch.
    """
    world = int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1
    if world <= 1:
        return None
    rank = int(getattr(trainer, "global_rank", 0))
    if len(dataset) < world:  # type: ignore[arg-type]
        raise ValueError(
            f"{type(dataset).__name__} has {len(dataset)} samples for {world} ranks; "  # type: ignore[arg-type]
            "every rank needs at least one"
        )
    return ShardedDistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
    )


def uses_lightning_sampler(trainer: object) -> bool:
    """Whether Lightning will replace the loaders' samplers (distributed, setting on)."""
    if trainer is None or int(getattr(trainer, "world_size", 1) or 1) <= 1:
        return False
    connector = getattr(trainer, "_accelerator_connector", None)
    return bool(getattr(connector, "use_distributed_sampler", True))
