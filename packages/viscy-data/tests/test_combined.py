"""CombinedDataModule, ConcatDataModule, BatchedConcatDataModule and CachedConcatDataModule."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from torch.utils.data import DataLoader, Dataset

from viscy_data._utils import collate_samples
from viscy_data.combined import (
    BatchedConcatDataModule,
    BatchedConcatDataset,
    CachedConcatDataModule,
    CombinedDataModule,
    CombineMode,
    ConcatDataModule,
    collate_batched_parts,
)
from viscy_data.gpu_aug import CachedOmeZarrDataModule
from viscy_data.synthetic import write_synthetic_plate


class ValueDataset(Dataset):
    """Samples {"x": (1,) value}; ``offset`` tells the children apart."""

    def __init__(self, n: int, offset: float) -> None:
        self.n, self.offset = n, offset

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.tensor([self.offset + i], dtype=torch.float32)}


class BatchReadDataset(ValueDataset):
    """A dataset that reads whole batches (returns a collated dict)."""

    def __getitems__(self, indices: list[int]) -> dict:
        return {"x": torch.tensor([[self.offset + i] for i in indices], dtype=torch.float32)}


class ValueDataModule(LightningDataModule):
    def __init__(self, name: str, offset: float, n: int = 6, batch_size: int = 2, **attrs) -> None:
        super().__init__()
        self.name, self.offset, self.n = name, offset, n
        self.batch_size, self.num_workers = batch_size, 0
        self.dataset_class = attrs.pop("dataset_class", ValueDataset)
        for key, value in attrs.items():
            setattr(self, key, value)

    def setup(self, stage: str) -> None:
        self.train_dataset = self.dataset_class(self.n, self.offset)
        self.val_dataset = self.dataset_class(self.n // 2, self.offset)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_dataset, batch_size=self.batch_size, collate_fn=collate_samples
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_dataset, batch_size=self.batch_size, collate_fn=collate_samples)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        return {**batch, "child": self.name}


class RecordingModule(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.train_batches: list = []
        self.val_batches: list = []

    def training_step(self, batch, batch_idx):
        self.train_batches.append(batch)
        parts = batch if isinstance(batch, list) else [batch]
        return sum(self.layer(p["x"].view(-1, 1)).sum() for p in parts)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        self.val_batches.append((dataloader_idx, batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fast_trainer(**kwargs) -> Trainer:
    return Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_combined_sends_each_batch_through_its_own_child():
    dm = CombinedDataModule(
        [ValueDataModule("a", 0.0), ValueDataModule("b", 100.0, n=2)],
        val_mode="sequential",
    )
    assert dm.train_mode is CombineMode.MAX_SIZE_CYCLE
    model = RecordingModule()
    fast_trainer(fast_dev_run=True).fit(model, datamodule=dm)
    (train_batch,) = model.train_batches
    assert [p["child"] for p in train_batch] == ["a", "b"]
    assert train_batch[1]["x"].min() >= 100
    assert [(i, b["child"]) for i, b in model.val_batches] == [(0, "a"), (1, "b")]


def test_combined_rejects_an_empty_list():
    with pytest.raises(ValueError, match="at least one"):
        CombinedDataModule([])


def test_concat_joins_datasets_and_runs_with_a_trainer():
    dm = ConcatDataModule([ValueDataModule("a", 0.0), ValueDataModule("b", 100.0)])
    dm.setup("fit")
    assert len(dm.train_dataset) == 12
    assert len(dm.val_dataset) == 6
    model = RecordingModule()
    fast_trainer(fast_dev_run=True).fit(model, datamodule=dm)
    assert model.train_batches[0]["child"] == "a"  # the first child's device transform
    assert model.train_batches[0]["x"].shape == (2, 1)


def test_concat_reports_children_that_disagree():
    with pytest.raises(
        ValueError, match=r"batch_size: ValueDataModule\[0\]=2, ValueDataModule\[1\]=4"
    ):
        ConcatDataModule([ValueDataModule("a", 0.0), ValueDataModule("b", 1.0, batch_size=4)])


def test_concat_patches_per_stack_default_and_zero():
    # neither child has train_patches_per_stack: counts as 1, no division by zero
    dm = ConcatDataModule([ValueDataModule("a", 0.0), ValueDataModule("b", 1.0)])
    assert dm.train_patches_per_stack == 1
    zero = [ValueDataModule(n, 0.0, train_patches_per_stack=0) for n in "ab"]
    with pytest.raises(ValueError, match="train_patches_per_stack"):
        ConcatDataModule(zero)
    four = [ValueDataModule(n, 0.0, batch_size=8, train_patches_per_stack=4) for n in "ab"]
    dm = ConcatDataModule(four)
    dm.setup("fit")
    assert dm.train_dataloader().batch_size == 2


class CountingBatchReadDataset(BatchReadDataset):
    calls: list = []

    def __getitems__(self, indices: list[int]) -> dict:
        self.calls.append(list(indices))
        return super().__getitems__(indices)


def test_batched_concat_reads_each_child_once_per_batch():
    CountingBatchReadDataset.calls = []
    ds = BatchedConcatDataset([CountingBatchReadDataset(4, 0.0), ValueDataset(3, 100.0)])
    parts = ds.__getitems__([5, 0, 2, 4])
    # as 0.1.0: one collated part per child, in order of first appearance, tagged by child
    assert CountingBatchReadDataset.calls == [[0, 2]]  # child 0 read its share with one call
    assert [p["_dataset_idx"] for p in parts] == [1, 0]
    assert parts[0]["x"].view(-1).tolist() == [101.0, 100.0]  # per-item child, collated
    assert parts[1]["x"].view(-1).tolist() == [0.0, 2.0]
    batch = collate_batched_parts(parts)
    assert batch["x"].view(-1).tolist() == [101.0, 100.0, 0.0, 2.0]
    assert "_dataset_idx" not in batch
    assert ds[5]["x"].item() == 101.0
    with pytest.raises(IndexError):
        ds.__getitems__([7])


class SignedDataModule(ValueDataModule):
    """A child whose device transform multiplies ``x`` by its own sign."""

    def on_after_batch_transfer(self, batch, dataloader_idx):
        return {**batch, "x": batch["x"] * self.sign, "child": self.name}


def test_batched_concat_runs_each_childs_transform_on_its_part():
    children = [
        SignedDataModule("a", 0.0, n=6, batch_size=4, sign=1, dataset_class=BatchReadDataset),
        SignedDataModule("b", 100.0, n=6, batch_size=4, sign=-1, dataset_class=BatchReadDataset),
    ]
    dm = BatchedConcatDataModule(children)
    dm.setup("fit")
    torch.manual_seed(0)  # the loader shuffles with torch's global generator
    batches = list(dm.train_dataloader())
    assert len(batches) == 3  # 12 items, batches of 4, the last partial one dropped
    mixed = 0
    for batch in batches:
        assert sum(len(p["x"]) for p in batch) == 4
        for part in batch:  # each part holds the items of the child it names
            low = 100.0 * part["_dataset_idx"]
            assert ((part["x"] >= low) & (part["x"] < low + 6)).all()
        expected = torch.cat([p["x"] * (1, -1)[p["_dataset_idx"]] for p in batch])
        out = dm.on_after_batch_transfer(batch, 0)
        assert torch.equal(out["x"], expected)  # child b's share went through b's transform
        names = [children[p["_dataset_idx"]].name for p in batch]
        assert out["child"] == (names[0] if len(set(names)) == 1 else names)
        mixed += len(batch) > 1
    assert mixed  # 12 shuffled items: some batch mixes the two children


def test_batched_concat_datamodule_with_trainer():
    dm = BatchedConcatDataModule(
        [
            ValueDataModule("a", 0.0, dataset_class=BatchReadDataset),
            ValueDataModule("b", 100.0, dataset_class=BatchReadDataset),
        ]
    )
    model = RecordingModule()
    fast_trainer(fast_dev_run=True).fit(model, datamodule=dm)
    assert model.train_batches[0]["x"].shape == (2, 1)
    assert model.val_batches[0][1]["child"] == "a"


# ----------------------------------------------------------------- cached concatenation

SHAPE = (2, 2, 2, 32, 32)


@pytest.fixture(scope="session")
def plate_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("combined") / "plate.zarr"
    write_synthetic_plate(path, shape=SHAPE, channel_names=("Phase3D", "GFP"), normalization=False)
    return path


class PlateModule(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.shapes: list[tuple] = []

    def training_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch["Phase3D"].shape))
        return self.layer(batch["Phase3D"].mean().view(1, 1)).sum()

    def validation_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch["Phase3D"].shape))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class TranslationModule(PlateModule):
    def training_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch["source"].shape))
        return self.layer(batch["target"].mean().view(1, 1)).sum()

    def validation_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch["source"].shape))


def cached_child(plate_path, **kwargs) -> CachedOmeZarrDataModule:
    settings = dict(
        data_path=plate_path,
        channels="Phase3D",
        batch_size=2,
        num_workers=0,
        split_ratio=0.5,
        train_cpu_transforms=[],
        val_cpu_transforms=[],
        train_gpu_transforms=[],
        val_gpu_transforms=[],
        pin_memory=False,
    )
    settings.update(kwargs)
    return CachedOmeZarrDataModule(**settings)


def mmapped_child(plate_path, scratch, **kwargs):
    pytest.importorskip("tensordict")
    from viscy_data.mmap_cache import MmappedDataModule

    settings = dict(
        data_path=plate_path,
        channels=["Phase3D"],
        batch_size=2,
        num_workers=0,
        split_ratio=0.5,
        preprocess_transforms=[],
        train_cpu_transforms=[],
        val_cpu_transforms=[],
        train_gpu_transforms=[],
        val_gpu_transforms=[],
        pin_memory=False,
        scratch_dir=scratch,
        seed=1,
    )
    settings.update(kwargs)
    return MmappedDataModule(**settings)


class _Shift:
    """A GPU transform adding ``value`` to ``Phase3D`` (tells the children's apart)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, batch: dict) -> dict:
        return {**batch, "Phase3D": batch["Phase3D"] + self.value}


class _Scale(_Shift):
    def __call__(self, batch: dict) -> dict:
        return {**batch, "Phase3D": batch["Phase3D"] * self.value}


def test_cached_concat_collates_and_applies_the_first_childs_transforms(plate_path):
    # 0.1.0 yields lists of per-sample lists and applies no GPU transform (COMPATIBILITY.md);
    # ours: one collated batch dict, through the first child's GPU transforms
    children = [
        cached_child(plate_path, train_gpu_transforms=[_Shift(1000.0)]),
        cached_child(plate_path, seed=1, train_gpu_transforms=[_Shift(2000.0)]),
    ]
    dm = CachedConcatDataModule(children)
    trainer = fast_trainer()
    dm.trainer = trainer
    dm.setup("fit")
    trainer.training = True
    raw = next(iter(dm.train_dataloader()))
    assert isinstance(raw, dict) and raw["Phase3D"].shape == (2, 1, *SHAPE[2:])
    out = dm.on_after_batch_transfer({k: v.clone() for k, v in raw.items()
                                      if isinstance(v, torch.Tensor)}, 0)  # fmt: skip
    assert torch.equal(out["Phase3D"], raw["Phase3D"] + 1000.0)


def test_cached_concat_warns_when_childrens_transforms_differ(plate_path):
    same = [cached_child(plate_path, train_gpu_transforms=[_Shift(1.0)]) for _ in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CachedConcatDataModule(same)  # same kinds of transforms: no warning
    other = cached_child(plate_path, train_gpu_transforms=[_Scale(2.0)])
    with pytest.warns(UserWarning, match=r"first child's train_gpu_transforms.*data_modules\[1\]"):
        CachedConcatDataModule([same[0], other])


def test_cached_concat_with_trainer(plate_path, tmp_path):
    children = [cached_child(plate_path), cached_child(plate_path, seed=1)]
    dm = CachedConcatDataModule(children)
    model = PlateModule()
    fast_trainer(fast_dev_run=True).fit(model, datamodule=dm)
    assert model.shapes == [(2, 1, *SHAPE[2:])] * 2
    assert all(child.caches == {} for child in children)  # teardown reached the children


def test_concat_of_two_translation_modules(plate_path):
    from viscy_data.hcs import HCSDataModule

    children = [
        HCSDataModule(
            data_path=str(plate_path),
            source_channel="Phase3D",
            target_channel="GFP",
            z_window_size=1,
            split_ratio=0.5,
            batch_size=2,
            num_workers=0,
            yx_patch_size=(16, 16),
            pin_memory=False,
        )
        for _ in range(2)
    ]
    dm = ConcatDataModule(children)  # no train_patches_per_stack on these: counts as 1
    dm.setup("fit")
    assert len(dm.train_dataset) == sum(len(c.train_dataset) for c in children)
    model = TranslationModule()
    fast_trainer(fast_dev_run=True).fit(model, datamodule=dm)
    assert model.shapes == [(2, 1, 1, 16, 16)] * 2


def test_cached_concat_rejects_mismatched_workers(plate_path):
    with pytest.raises(ValueError, match="num_workers"):
        CachedConcatDataModule([cached_child(plate_path), cached_child(plate_path, num_workers=2)])


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_both_caches_with_two_workers(plate_path, tmp_path, start_method):
    """A volume cache and a memory-mapped buffer filled by two spawned (or forked) workers."""
    cached = cached_child(plate_path, num_workers=2, batch_size=1, skip_cache=False)
    mmapped = mmapped_child(plate_path, tmp_path, num_workers=2, batch_size=1)
    dm = CachedConcatDataModule([cached, mmapped])
    dm.multiprocessing_context = start_method
    dm.setup("fit")
    try:
        if start_method == "fork":
            # the parent opens its readers first: forked workers must not reuse the handles
            cached.train_dataset[0]
        loader = dm.val_dataloader()
        batches = list(loader)
        del loader
        n_cached, n_mmapped = len(cached.val_dataset), len(mmapped.val_dataset)
        assert len(batches) == n_cached + n_mmapped
        # the workers' writes are visible here, in the main process
        assert len(cached.caches["val"]) == n_cached
        assert mmapped.val_dataset.filled.count() == n_mmapped
        fov, t = mmapped.val_dataset.volume_key(n_mmapped - 1)
        with open_ome_zarr(plate_path, mode="r") as plate:
            expected = np.asarray(plate[fov]["0"][t, 0], dtype=np.float32)
        np.testing.assert_array_equal(batches[-1]["Phase3D"][0, 0].numpy(), expected)
        np.testing.assert_array_equal(
            mmapped.val_dataset.buffer[n_mmapped - 1, 0].numpy(), expected
        )
    finally:
        dm.teardown("fit")
    assert mmapped.buffer_dir is None
