"""MmappedDataModule: preprocessed volumes in memory-mapped buffers (tensordict extra)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr
from lightning.pytorch import LightningModule, Trainer

pytest.importorskip("tensordict")

from viscy_data.mmap_cache import MmappedDataModule

CHANNELS = ("Phase3D", "GFP")
ZYX = (2, 8, 8)
FOV_TIMEPOINTS = {"A/1/0": 2, "A/1/1": 3, "B/1/0": 3, "B/1/1": 2}  # FOVs with different T


def write_plate(path, odd_fov: str | None = None):
    rng = np.random.default_rng(0)
    with open_ome_zarr(path, layout="hcs", mode="w-", channel_names=list(CHANNELS)) as plate:
        for name, n_t in FOV_TIMEPOINTS.items():
            zyx = (ZYX[0], ZYX[1], ZYX[2] + 2) if name == odd_fov else ZYX
            pos = plate.create_position(*name.split("/"))
            pos.create_image("0", rng.integers(0, 500, (n_t, len(CHANNELS), *zyx), dtype=np.uint16))
    return path


@pytest.fixture(scope="session")
def plate_path(tmp_path_factory):
    return write_plate(tmp_path_factory.mktemp("mmap") / "plate.zarr")


class Halve:
    """Preprocessing: halve every channel (stands in for normalization)."""

    def __call__(self, sample: dict) -> dict:
        return {k: v / 2 if k in CHANNELS else v for k, v in sample.items()}


class FailOn:
    def __init__(self, value_above: float) -> None:
        self.value_above = value_above

    def __call__(self, sample: dict) -> dict:
        if sample["GFP"].max() > self.value_above:
            raise RuntimeError("preprocessing failed")
        return sample


class TinyModule(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.shapes: list[tuple] = []

    def training_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch["GFP"].shape))
        return self.layer(batch["GFP"].mean().view(1, 1)).sum()

    def validation_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch["Phase3D"].shape))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def make_module(plate_path, tmp_path, **kwargs) -> MmappedDataModule:
    settings = dict(
        data_path=plate_path,
        channels=list(CHANNELS),
        batch_size=2,
        num_workers=0,
        split_ratio=0.5,
        preprocess_transforms=[Halve()],
        train_cpu_transforms=[],
        val_cpu_transforms=[],
        train_gpu_transforms=[],
        val_gpu_transforms=[],
        pin_memory=False,
        scratch_dir=tmp_path,
    )
    settings.update(kwargs)
    return MmappedDataModule(**settings)


def true_volume(plate_path, fov: str, t: int) -> np.ndarray:
    with open_ome_zarr(plate_path, mode="r") as plate:
        return np.asarray(plate[fov]["0"][t]).astype(np.float32)


def test_setup_sizes_buffers_for_fovs_with_different_t(plate_path, tmp_path):
    dm = make_module(plate_path, tmp_path)
    dm.setup("fit")
    try:
        for ds in (dm.train_dataset, dm.val_dataset):
            n_volumes = sum(FOV_TIMEPOINTS[f] for f in ds.fov_names)
            assert len(ds) == n_volumes
            assert tuple(ds.buffer.shape) == (n_volumes, len(CHANNELS), *ZYX)
            assert ds.filled.count() == 0
        ds = dm.train_dataset
        last = len(ds) - 1  # the last t of the last FOV
        fov, t = ds.volume_key(last)
        assert t == FOV_TIMEPOINTS[fov] - 1
        sample = ds[last]
        expected = true_volume(plate_path, fov, t) / 2
        np.testing.assert_allclose(sample["GFP"][0].numpy(), expected[1])
        assert last in ds.filled
        np.testing.assert_allclose(ds.buffer[last].numpy(), expected)
        # the second read comes from the buffer: same values
        np.testing.assert_allclose(ds[last]["Phase3D"][0].numpy(), expected[0])
    finally:
        dm.teardown("fit")


def test_row_is_not_marked_filled_when_preprocessing_fails(plate_path, tmp_path):
    dm = make_module(plate_path, tmp_path, preprocess_transforms=[FailOn(-1.0)])
    dm.setup("fit")
    try:
        with pytest.raises(RuntimeError, match="applying transform"):
            dm.train_dataset[0]
        assert 0 not in dm.train_dataset.filled
    finally:
        dm.teardown("fit")


def test_fit_with_trainer_and_teardown_releases_files(plate_path, tmp_path):
    dm = make_module(plate_path, tmp_path)
    model = TinyModule()
    trainer = Trainer(
        accelerator="cpu",
        fast_dev_run=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert model.shapes[0] == (2, 1, *ZYX)
    assert len(model.shapes) == 2
    assert dm.buffer_dir is None
    assert list(tmp_path.iterdir()) == []  # buffer files deleted


def test_fovs_of_different_shapes_are_rejected_at_setup(tmp_path):
    plate_path = write_plate(tmp_path / "odd.zarr", odd_fov="B/1/1")
    dm = make_module(plate_path, tmp_path / "scratch", split_ratio=0.75)
    with pytest.raises(ValueError, match="B/1/1"):
        dm.setup("fit")
    assert not (tmp_path / "scratch").exists()  # failed before making any file


def test_mixin_order_keeps_the_datamodule_first():
    from viscy_data.gpu_aug import GPUTransformDataModule
    from viscy_data.select import SelectWell

    mro = MmappedDataModule.__mro__
    assert mro.index(GPUTransformDataModule) < mro.index(SelectWell)


def test_missing_extra_is_named(plate_path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensordict", None)  # as if not installed
    with pytest.raises(ImportError, match=r"viscy-data\[mmap\]"):
        make_module(plate_path, tmp_path)


def test_training_keeps_the_last_partial_batch(plate_path, tmp_path):
    # 0.1.0: MmappedDataModule's training loader keeps the last partial batch
    dm = make_module(plate_path, tmp_path, batch_size=4)
    dm.setup("fit")
    try:
        n = len(dm.train_dataset)
        sizes = [len(b["GFP"]) for b in dm.train_dataloader()]
        assert sum(sizes) == n and sizes[-1] == (n % 4 or 4)
        assert not dm.train_dataloader().drop_last
    finally:
        dm.teardown("fit")
