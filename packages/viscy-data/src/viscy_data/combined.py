"""Training on several DataModules at once.

- :class:`CombinedDataModule`: one loader per child, combined by Lightning's
  ``CombinedLoader`` (children may differ in everything).
- :class:`ConcatDataModule`: the children's datasets concatenated into one loader; the
  children must agree on batch size, workers and patches per stack.
- :class:`BatchedConcatDataModule` / :class:`BatchedConcatDataset`: the same for datasets
  that read whole batches at once (``__getitems__``, e.g. the triplet datasets); each child's
  share of a batch goes through that child's own device transforms.
- :class:`CachedConcatDataModule`: concatenation of cached GPU-augmentation DataModules,
  sharded under DDP.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from viscy_data._reader import worker_start_method
from viscy_data._utils import collate_samples
from viscy_data.gpu_aug import distributed_sampler
from viscy_data.loading import identity_collate

__all__ = [
    "BatchedConcatDataModule",
    "BatchedConcatDataset",
    "CachedConcatDataModule",
    "CombineMode",
    "CombinedDataModule",
    "ConcatDataModule",
]


class CombineMode(Enum):
    """How :class:`CombinedDataModule` walks its children's loaders (Lightning modes)."""

    MIN_SIZE = "min_size"
    MAX_SIZE_CYCLE = "max_size_cycle"
    MAX_SIZE = "max_size"
    SEQUENTIAL = "sequential"


def _check_children(data_modules: Sequence[LightningDataModule], owner: str) -> list:
    data_modules = list(data_modules)
    if not data_modules:
        raise ValueError(f"{owner} needs at least one data module")
    for i, dm in enumerate(data_modules):
        if not isinstance(dm, LightningDataModule):
            raise TypeError(
                f"{owner}: data_modules[{i}] is a {type(dm).__name__}, not a DataModule"
            )
    return data_modules


class CombinedDataModule(LightningDataModule):
    """Several DataModules trained together, each with its own loader.

    Training batches are lists with one batch per child (``train_mode``, default: cycle the
    shorter loaders until the longest is done); validation, test and prediction go through the
    children one after another (``dataloader_idx`` says which). Each batch goes through its own
    child's ``on_after_batch_transfer``.

    Parameters
    ----------
    data_modules : Sequence[LightningDataModule]
        The children.
    train_mode, val_mode, test_mode, predict_mode : CombineMode
        How each stage combines the children's loaders.
    """

    def __init__(
        self,
        data_modules: Sequence[LightningDataModule],
        train_mode: CombineMode = CombineMode.MAX_SIZE_CYCLE,
        val_mode: CombineMode = CombineMode.SEQUENTIAL,
        test_mode: CombineMode = CombineMode.SEQUENTIAL,
        predict_mode: CombineMode = CombineMode.SEQUENTIAL,
    ) -> None:
        super().__init__()
        self.data_modules = _check_children(data_modules, "CombinedDataModule")
        self.train_mode = CombineMode(train_mode)
        self.val_mode = CombineMode(val_mode)
        self.test_mode = CombineMode(test_mode)
        self.predict_mode = CombineMode(predict_mode)

    def prepare_data(self) -> None:
        for dm in self.data_modules:
            dm.prepare_data()

    def setup(self, stage: str) -> None:
        for dm in self.data_modules:
            dm.trainer = self.trainer  # children's hooks may look at the trainer state
            dm.setup(stage)

    def teardown(self, stage: str) -> None:
        for dm in self.data_modules:
            dm.teardown(stage)

    def _combined(self, method: str, mode: CombineMode) -> CombinedLoader:
        return CombinedLoader([getattr(dm, method)() for dm in self.data_modules], mode.value)

    def train_dataloader(self) -> CombinedLoader:
        return self._combined("train_dataloader", self.train_mode)

    def val_dataloader(self) -> CombinedLoader:
        return self._combined("val_dataloader", self.val_mode)

    def test_dataloader(self) -> CombinedLoader:
        return self._combined("test_dataloader", self.test_mode)

    def predict_dataloader(self) -> CombinedLoader:
        return self._combined("predict_dataloader", self.predict_mode)

    def _current_mode(self) -> CombineMode:
        trainer = self.trainer
        if trainer is None or trainer.training:
            return self.train_mode
        if trainer.testing:
            return self.test_mode
        if trainer.predicting:
            return self.predict_mode
        return self.val_mode

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self._current_mode() == CombineMode.SEQUENTIAL:
            return self.data_modules[dataloader_idx].on_after_batch_transfer(batch, 0)
        if not isinstance(batch, list | tuple) or len(batch) != len(self.data_modules):
            raise TypeError(
                f"CombinedDataModule expected a list of {len(self.data_modules)} batches, "
                f"got {type(batch).__name__}"
            )
        return [
            None if part is None else dm.on_after_batch_transfer(part, i)
            for i, (dm, part) in enumerate(zip(self.data_modules, batch, strict=True))
        ]


def _agreed(data_modules: Sequence[LightningDataModule], name: str, default: Any) -> Any:
    """The value of a loader setting all children share; a clear error if they differ."""
    values = [getattr(dm, name, default) for dm in data_modules]
    if any(v != values[0] for v in values[1:]):
        listing = ", ".join(
            f"{type(dm).__name__}[{i}]={v!r}"
            for i, (dm, v) in enumerate(zip(data_modules, values, strict=True))
        )
        raise ValueError(f"the concatenated data modules disagree on {name}: {listing}")
    return values[0]


class _ConcatLoaders(LightningDataModule):
    """Loader settings agreed by the children and the loaders built from them."""

    data_modules: list[LightningDataModule]
    collate_fn: Callable = staticmethod(collate_samples)
    multiprocessing_context: Literal["fork", "spawn", "forkserver"] | None = None

    def _agree_on_loader_settings(self) -> None:
        owner = type(self).__name__
        self.batch_size = _agreed(self.data_modules, "batch_size", None)
        self.num_workers = _agreed(self.data_modules, "num_workers", 0)
        self.prefetch_factor = _agreed(self.data_modules, "prefetch_factor", None)
        self.pin_memory = any(getattr(dm, "pin_memory", False) for dm in self.data_modules)
        self.persistent_workers = any(
            getattr(dm, "persistent_workers", False) for dm in self.data_modules
        )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(
                f"{owner}: children need a positive integer batch_size, got {self.batch_size!r}"
            )
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"{owner}: children need num_workers >= 0, got {self.num_workers!r}")

    def _loader(
        self, dataset: Dataset, batch_size: int, shuffle: bool, drop_last: bool
    ) -> DataLoader:
        workers = self.num_workers
        sampler = distributed_sampler(dataset, shuffle=shuffle)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
            multiprocessing_context=worker_start_method(self.multiprocessing_context, workers),
            collate_fn=self.collate_fn,
            drop_last=drop_last,
        )

    def prepare_data(self) -> None:
        for dm in self.data_modules:
            dm.prepare_data()

    def _setup_children(self, stage: str) -> None:
        if stage != "fit":
            raise NotImplementedError(f"{type(self).__name__} only supports 'fit', got {stage!r}")
        for dm in self.data_modules:
            dm.trainer = self.trainer
            dm.setup(stage)
        for name in ("train_dataset", "val_dataset"):
            lacking = [type(dm).__name__ for dm in self.data_modules if not hasattr(dm, name)]
            if lacking:
                raise ValueError(f"data module(s) {lacking} have no {name} after setup('fit')")

    def teardown(self, stage: str) -> None:
        for dm in self.data_modules:
            dm.teardown(stage)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # one loader mixes all children: the first child's device transforms apply to all
        first = self.data_modules[0]
        first.trainer = self.trainer
        return first.on_after_batch_transfer(batch, dataloader_idx)


class ConcatDataModule(_ConcatLoaders):
    """The children's training and validation datasets concatenated into one loader each.

    The children must agree on ``batch_size``, ``num_workers``, ``prefetch_factor`` and
    ``train_patches_per_stack`` (a child without it counts as 1). A training batch holds
    ``batch_size // train_patches_per_stack`` items, each of which may yield several patches.
    Device transforms of the first child apply to every batch.

    Parameters
    ----------
    data_modules : Sequence[LightningDataModule]
        The children, set up with the same stage.
    """

    def __init__(self, data_modules: Sequence[LightningDataModule]) -> None:
        super().__init__()
        self.data_modules = _check_children(data_modules, type(self).__name__)
        self._agree_on_loader_settings()
        patches = _agreed(self.data_modules, "train_patches_per_stack", 1)
        if not isinstance(patches, int) or patches < 1:
            raise ValueError(
                f"{type(self).__name__}: train_patches_per_stack must be an integer >= 1, "
                f"got {patches!r}"
            )
        if self.batch_size % patches:
            raise ValueError(
                f"{type(self).__name__}: batch_size {self.batch_size} is not a multiple of "
                f"train_patches_per_stack {patches}"
            )
        self.train_patches_per_stack = patches

    def _concat(self, datasets: Iterable[Dataset]) -> ConcatDataset:
        return ConcatDataset(list(datasets))

    def setup(self, stage: str) -> None:
        self._setup_children(stage)
        self.train_dataset = self._concat(dm.train_dataset for dm in self.data_modules)
        self.val_dataset = self._concat(dm.val_dataset for dm in self.data_modules)

    def train_dataloader(self) -> DataLoader:
        per_stack = self.batch_size // self.train_patches_per_stack
        return self._loader(self.train_dataset, per_stack, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, self.batch_size, shuffle=False, drop_last=False)


DATASET_INDEX_KEY = "_dataset_idx"


def _concat_batches(parts: Sequence[Any]) -> Any:
    """Concatenate collated batches along the first axis.

    Tensors are concatenated, dicts key by key (keys every part has), named tuples such as
    :class:`~viscy_data.HCSStackIndex` field by field, other lists and tuples item by item;
    other values stay one value where all parts agree, else become a list (one per part).
    """
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(list(parts), dim=0)
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(p, dict) and k in p for p in parts)]
        return {key: _concat_batches([p[key] for p in parts]) for key in keys}
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(_concat_batches(list(f)) for f in zip(*parts, strict=True)))
    if isinstance(first, list | tuple):
        return [item for part in parts for item in part]
    # anything else (a name, a flag): one value if the parts agree, else one per part
    return first if all(type(p) is type(first) and p == first for p in parts) else list(parts)


def collate_batched_parts(parts: Sequence[Any]) -> Any:
    """One batch from :meth:`BatchedConcatDataset.__getitems__` parts, without the devices.

    Concatenates the parts (in order) and drops their ``_dataset_idx``; for code that iterates
    a :class:`BatchedConcatDataset` by hand. :class:`BatchedConcatDataModule` instead keeps the
    parts apart until each child's ``on_after_batch_transfer`` has run on its own part.
    """
    batches = [
        {k: v for k, v in part.items() if k != DATASET_INDEX_KEY}
        if isinstance(part, dict)
        else collate_samples(part)
        for part in parts
    ]
    return batches[0] if len(batches) == 1 else _concat_batches(batches)


class BatchedConcatDataset(ConcatDataset):
    """A ConcatDataset that reads each child's share of a batch with one call.

    ``__getitems__(indices)`` groups the indices by child dataset (in order of first
    appearance) and calls the child's own ``__getitems__`` (batched reads) where it has one,
    else ``__getitem__`` per index. As in 0.1.0, it returns a list with one collated batch
    dict per child touched, each tagged with the child's position in ``_dataset_idx``.

    Parameters
    ----------
    datasets : Iterable[Dataset]
        Child datasets, concatenated in order (as ``torch.utils.data.ConcatDataset``).
    """

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        super().__init__(datasets)

    def _locate(self, index: int) -> tuple[int, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, index)
        start = 0 if dataset_idx == 0 else self.cumulative_sizes[dataset_idx - 1]
        return dataset_idx, index - start

    def __getitem__(self, index: int) -> Any:
        dataset_idx, local = self._locate(index)
        return self.datasets[dataset_idx][local]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        groups: dict[int, list[int]] = {}
        for index in indices:
            dataset_idx, local = self._locate(int(index))
            groups.setdefault(dataset_idx, []).append(local)
        parts = []
        for dataset_idx, local_indices in groups.items():
            dataset = self.datasets[dataset_idx]
            if hasattr(dataset, "__getitems__"):
                part = dataset.__getitems__(local_indices)
            else:
                part = [dataset[i] for i in local_indices]
            if not isinstance(part, dict):
                part = collate_samples(part)
            parts.append({**part, DATASET_INDEX_KEY: dataset_idx})
        return parts


class BatchedConcatDataModule(ConcatDataModule):
    """:class:`ConcatDataModule` for datasets with batched reads (``__getitems__``).

    A loader batch is a list with one collated part per child it draws from, each tagged
    ``_dataset_idx`` (as in 0.1.0). ``on_after_batch_transfer`` runs each child's own
    ``on_after_batch_transfer`` (its normalizations and augmentations) on its part and
    concatenates the parts into one batch, in part order.

    Parameters
    ----------
    data_modules : Sequence[LightningDataModule]
        The children.
    """

    collate_fn = staticmethod(identity_collate)

    def __init__(self, data_modules: Sequence[LightningDataModule]) -> None:
        super().__init__(data_modules)

    def _concat(self, datasets: Iterable[Dataset]) -> BatchedConcatDataset:
        return BatchedConcatDataset(list(datasets))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict):  # not from our loaders: the first child's transforms
            return super().on_after_batch_transfer(batch, dataloader_idx)
        outputs = []
        for part in batch:
            part = dict(part)
            child = self.data_modules[int(part.pop(DATASET_INDEX_KEY))]
            child.trainer = self.trainer
            outputs.append(child.on_after_batch_transfer(part, dataloader_idx))
        return outputs[0] if len(outputs) == 1 else _concat_batches(outputs)


def _transform_kinds(transform: Any) -> list[str]:
    """Type names of a (composed) transform's steps, to tell children's pipelines apart."""
    if transform is None:
        return []
    steps = getattr(transform, "transforms", None)
    if isinstance(steps, list | tuple):
        return [name for step in steps for name in _transform_kinds(step)]
    return [type(transform).__name__]


class CachedConcatDataModule(_ConcatLoaders):
    """Concatenation of cached GPU-augmentation DataModules (e.g. several plates' caches).

    Each child keeps its own caches (so their key spaces never mix); the concatenated loaders
    shard under DDP and collate every batch into one dict; the first child's GPU transforms
    apply to every batch (a ``UserWarning`` says so when the children's differ). The children
    must agree on ``batch_size``, ``num_workers`` and ``prefetch_factor``.

    0.1.0 yields uncollated batches (a list of per-sample lists) and applies no GPU
    transforms at all; see COMPATIBILITY.md.

    Parameters
    ----------
    data_modules : Sequence[LightningDataModule]
        The children, typically :class:`~viscy_data.gpu_aug.CachedOmeZarrDataModule`.
    """

    def __init__(self, data_modules: Sequence[LightningDataModule]) -> None:
        super().__init__()
        self.data_modules = _check_children(data_modules, type(self).__name__)
        self._agree_on_loader_settings()
        self._warn_if_transforms_differ()

    def _warn_if_transforms_differ(self) -> None:
        for name in ("train_gpu_transforms", "val_gpu_transforms"):
            kinds = [_transform_kinds(getattr(dm, name, None)) for dm in self.data_modules]
            others = [i for i, k in enumerate(kinds) if k != kinds[0]]
            if others:
                warnings.warn(
                    f"CachedConcatDataModule applies the first child's {name} "
                    f"({kinds[0]}) to every batch; data_modules{others} have other ones "
                    f"({[kinds[i] for i in others]}), which are not used",
                    UserWarning,
                    stacklevel=3,
                )

    def setup(self, stage: str) -> None:
        self._setup_children(stage)
        self.train_dataset = ConcatDataset([dm.train_dataset for dm in self.data_modules])
        self.val_dataset = ConcatDataset([dm.val_dataset for dm in self.data_modules])

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, self.batch_size, shuffle=False, drop_last=False)
