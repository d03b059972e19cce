"""Errors never vanish: a damaged chunk (or a failing transform) raises in ``trainer.fit``.

Every loader we build, thread workers or worker processes started by ``fork`` or ``spawn``,
re-raises the original error in the training process; an epoch yields all its batches or
raises, never ends early. (Before, MONAI's ``ThreadBuffer`` printed the traceback and
stopped: the epoch ended after a few batches with no exception.)
"""

from __future__ import annotations

import functools
import operator
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import Dataset

from viscy_data import PatchReadError, loading
from viscy_data.loading import ThreadDataLoader, thread_data_loader
from viscy_data.synthetic import write_synthetic_plate

CONTEXTS = ["threads", "fork", "spawn"]


class _Batches(Dataset):
    """Index i -> tensor [i]; raises on ``bad`` (a module-level class: spawn-picklable)."""

    def __init__(self, n: int, bad: int | None = None) -> None:
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        if i == self.bad:
            raise KeyError(f"sample {i} is damaged (FOV 'A/1/0', t=3)")
        return torch.tensor([i])


def _loader(dataset, context: str, **kwargs) -> ThreadDataLoader:
    mp = None if context == "threads" else context
    workers = kwargs.pop("num_workers", 2)
    return thread_data_loader(
        dataset, num_workers=workers, pin_memory=False, multiprocessing_context=mp, **kwargs
    )


@pytest.mark.parametrize("context", ["threads", "fork"])
def test_error_reraised_with_original_message_after_good_batches(context):
    loader = _loader(_Batches(40, bad=29), context, batch_size=4)
    seen: list = []
    with pytest.raises(KeyError, match=r"sample 29 is damaged \(FOV 'A/1/0', t=3\)") as err:
        seen.extend(loader)
    assert len(seen) == 7  # batches 0..6 arrive, batch 7 (samples 28..31) raises
    if context == "threads":
        assert any("batch 7 of 10" in note for note in err.value.__notes__)
        assert err.traceback[-1].name == "__getitem__"  # the worker's traceback is kept


def test_no_batch_lost_and_order_matches_serial():
    dataset = _Batches(103)
    options = {"batch_size": 4, "shuffle": True}
    serial = list(
        _loader(dataset, "threads", num_workers=0, generator=torch.Generator().manual_seed(3),
                **options)
    )  # fmt: skip
    threaded = list(
        _loader(dataset, "threads", num_workers=2, generator=torch.Generator().manual_seed(3),
                prefetch_factor=1, **options)
    )  # fmt: skip
    assert len(threaded) == len(serial) == 26
    assert all(torch.equal(a, b) for a, b in zip(serial, threaded, strict=True))
    assert sorted(torch.cat(threaded).flatten().tolist()) == list(range(103))


def test_abandoned_epoch_and_repeats():
    loader = _loader(_Batches(64), "threads", batch_size=2)
    first = next(iter(loader))  # generator closed: pending reads are cancelled
    assert first.flatten().tolist() == [0, 1]
    assert len(list(loader)) == 32  # a fresh epoch is whole
    assert isinstance(loader, loading._MonaiThreadDataLoader)  # what 0.1.0 returned
    with pytest.raises(ValueError, match="repeats=2"):
        ThreadDataLoader(_Batches(4), repeats=2)


# ---------------------------------------------------------------- pipelines in trainer.fit


class _AnyBatch(LightningModule):
    """A one-parameter model whose loss touches every tensor of any batch."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.steps = 0

    @staticmethod
    def _tensors(batch):
        if isinstance(batch, torch.Tensor):
            return [batch]
        if isinstance(batch, dict):
            return [t for v in batch.values() for t in _AnyBatch._tensors(v)]
        if isinstance(batch, list | tuple):
            return [t for v in batch for t in _AnyBatch._tensors(v)]
        return []

    def training_step(self, batch, batch_idx):
        self.steps += 1
        return self.w * sum(t.float().mean() for t in self._tensors(batch))

    def validation_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(dm) -> _AnyBatch:
    model = _AnyBatch()
    Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,  # one set of (spawned) workers per test
    ).fit(model, datamodule=dm)
    return model


@pytest.fixture(scope="module")
def damaged_plate(tmp_path_factory):
    """A plate (tracks included) whose chunk files are all overwritten with garbage."""
    root = tmp_path_factory.mktemp("damaged")
    plate = write_synthetic_plate(
        root / "plate.zarr",
        shape=(3, 2, 4, 64, 64),
        wells=(("A", "1"), ("B", "1")),
        fovs_per_well=2,
        tracks_path=root / "tracks",
        cells_per_fov=3,
        seed=4,
    )
    chunks = [p for p in plate.path.rglob("c/*/*/*/*/*") if p.is_file()]
    assert len(chunks) == 4 * 3 * 2
    for chunk in chunks:
        chunk.write_bytes(b"\x02\x01garbage" * 16)
    return plate


def _use_context(monkeypatch, module, context: str) -> None:
    """Thread pipelines: workers become processes of ``context`` (else threads)."""
    if context != "threads":
        builder = functools.partial(thread_data_loader, multiprocessing_context=context)
        monkeypatch.setattr(module, "thread_data_loader", builder)


@pytest.fixture
def restore_start_method():
    import multiprocessing

    original = multiprocessing.get_start_method(allow_none=True)
    yield
    multiprocessing.set_start_method(original, force=True)


def _assert_names_damage(err: pytest.ExceptionInfo, context: str) -> None:
    text = str(err.value)
    assert re.search(r"FOV '[AB]/1/[01]' t=\d channel\(s\) \[", text), text
    assert re.search(r"chunk file\(s\): \S+/plate.zarr/[AB]/1/[01]/0/c/", text), text
    if context == "threads":
        assert isinstance(err.value, PatchReadError)
        assert err.value.__cause__ is not None  # tensorstore's own error, chained


@pytest.mark.slow
@pytest.mark.parametrize("context", CONTEXTS)
def test_triplet_damaged_chunk_raises_in_fit(damaged_plate, monkeypatch, context):
    from viscy_data import _triplet_base, triplet

    _use_context(monkeypatch, _triplet_base, context)
    dm = triplet.TripletDataModule(
        data_path=str(damaged_plate.path),
        tracks_path=str(damaged_plate.tracks_path),
        source_channel=["Phase3D", "GFP"],
        z_range=(0, 4),
        initial_yx_patch_size=(32, 32),
        final_yx_patch_size=(32, 32),
        split_ratio=0.5,
        batch_size=2,
        num_workers=1,
        time_interval=1,
    )
    with pytest.raises(Exception, match="Cannot read FOV") as err:
        _fit(dm)
    _assert_names_damage(err, context)


@pytest.mark.slow
@pytest.mark.parametrize("context", CONTEXTS)
def test_hcs_damaged_chunk_raises_in_fit(damaged_plate, context):
    from viscy_data.hcs import HCSDataModule

    dm = HCSDataModule(
        data_path=str(damaged_plate.path),
        source_channel="Phase3D",
        target_channel="GFP",
        z_window_size=2,
        yx_patch_size=(32, 32),
        split_ratio=0.5,
        batch_size=2,
        num_workers=0 if context == "threads" else 1,
        multiprocessing_context=None if context == "threads" else context,
        pin_memory=False,
    )
    with pytest.raises(Exception, match="Cannot read FOV") as err:
        _fit(dm)
    _assert_names_damage(err, context)


@pytest.mark.slow
@pytest.mark.parametrize("context", CONTEXTS)
def test_classification_damaged_chunk_raises_in_fit(
    damaged_plate, tmp_path, restore_start_method, context
):
    import multiprocessing

    from viscy_data.cell_classification import ClassificationDataModule

    cells = damaged_plate.cells
    annotation = cells[["fov_name", "track_id", "t", "id", "z", "y", "x", "infection_state"]]
    csv = tmp_path / "annotation.csv"
    annotation.to_csv(csv, index=False)
    if context != "threads":
        multiprocessing.set_start_method(context, force=True)
    dm = ClassificationDataModule(
        image_path=damaged_plate.path,
        annotation_path=csv,
        val_fovs=["A/1/1"],
        train_exclude_timepoints=[],
        channel_name="GFP",
        z_range=(0, 4),
        train_transforms=None,
        val_transforms=None,
        initial_yx_patch_size=(32, 32),
        batch_size=2,
        num_workers=0 if context == "threads" else 1,
    )
    with pytest.raises(Exception, match="Cannot read FOV") as err:
        _fit(dm)
    _assert_names_damage(err, context)


@pytest.mark.slow
@pytest.mark.parametrize("context", CONTEXTS)
def test_cell_division_failing_read_raises_in_fit(tmp_path, monkeypatch, context):
    from viscy_data import _triplet_base
    from viscy_data import cell_division_triplet as division

    _use_context(monkeypatch, _triplet_base, context)
    for k in range(4):
        t = np.arange(5, dtype=np.float32).reshape(-1, 1, 1, 1)
        np.save(tmp_path / f"cell_{k}.npy", np.broadcast_to(k * 1000 + t * 10, (5, 2, 32, 32)))
    dm = division.CellDivisionTripletDataModule(
        data_path=str(tmp_path),
        source_channel=["bf", "h2b"],
        final_yx_patch_size=(32, 32),
        batch_size=2,
        num_workers=1,
        time_interval=1,
        split_ratio=0.5,
    )
    dm.setup("fit")
    for dataset in (dm.train_dataset, dm.val_dataset):
        # a failing (picklable, so spawn-able) transform: the sample has no key "GFP"
        dataset.transforms["positive"] = operator.itemgetter("GFP")
    monkeypatch.setattr(dm, "setup", lambda stage=None: None)  # keep the transforms
    with pytest.raises(KeyError, match="GFP"):
        _fit(dm)


def test_missing_chunk_reads_as_fill_value(tmp_path):
    from viscy_data import PatchBox, PatchReader

    plate = write_synthetic_plate(tmp_path / "p.zarr", shape=(2, 2, 2, 32, 32), version="0.4")
    chunk = Path(plate.path) / "A" / "1" / "0" / "0" / "1" / "0" / "0" / "0" / "0"
    assert chunk.is_file()
    chunk.unlink()
    for backend in ("tensorstore", "zarr"):
        reader = PatchReader(plate.path, backend=backend)
        box = PatchBox("A/1/0", 1, (0, 1), (0, 2), (0, 32), (0, 32))
        patch = reader.read_patch(box)
        assert (patch[0] == 0).all() and (patch[1] != 0).any()
        other = Path(plate.path) / "A" / "1" / "0" / "0" / "1" / "1" / "0" / "0" / "0"
        original = other.read_bytes()
        other.write_bytes(b"not a chunk")
        with pytest.raises(PatchReadError, match=r"FOV 'A/1/0' t=1 channel\(s\) \['Phase3D', "):
            PatchReader(plate.path, backend=backend).read_patch(box)
        other.write_bytes(original)
