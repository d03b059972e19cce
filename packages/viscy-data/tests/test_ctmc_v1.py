"""CTMCv1DataModule on two small synthetic DIC plates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr
from lightning.pytorch import LightningModule, Trainer

from viscy_data.ctmc_v1 import CTMCv1DataModule
from viscy_data.synthetic import write_synthetic_plate

SHAPE = (4, 1, 2, 32, 32)  # 4 FOVs x 4 T = 16 volumes per plate


@pytest.fixture(scope="session")
def ctmc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctmc")
    for name, seed in (("train", 0), ("val", 1)):
        write_synthetic_plate(root / f"{name}.zarr", shape=SHAPE, channel_names=("DIC",), seed=seed)
    return root


def make_module(root, **kwargs) -> CTMCv1DataModule:
    settings = dict(
        train_data_path=root / "train.zarr",
        val_data_path=root / "val.zarr",
        train_cpu_transforms=[],
        val_cpu_transforms=[],
        train_gpu_transforms=[],
        val_gpu_transforms=[],
        batch_size=4,
        num_workers=0,
        val_subsample_ratio=5,
        pin_memory=False,
    )
    settings.update(kwargs)
    return CTMCv1DataModule(**settings)


class TinyModule(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.batch_sizes: list[int] = []

    def training_step(self, batch, batch_idx):
        self.batch_sizes.append(batch["DIC"].shape[0])
        return self.layer(batch["DIC"].mean().view(1, 1)).sum()

    def validation_step(self, batch, batch_idx):
        self.batch_sizes.append(batch["DIC"].shape[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_setup_uses_all_training_volumes_and_subsamples_validation(ctmc_root):
    dm = make_module(ctmc_root)
    dm.setup("fit")
    try:
        assert len(dm.train_dataset) == 16
        assert len(dm.val_dataset) == 4  # indices 0, 5, 10, 15
        assert dm.val_dataset.indices == [0, 5, 10, 15]
        fov, t = dm.val_dataset.dataset.volume_key(5)
        sample = dm.val_dataset[1]
        with open_ome_zarr(ctmc_root / "val.zarr", mode="r") as plate:
            expected = np.asarray(plate[fov]["0"][t, 0], dtype=np.float32)
        np.testing.assert_array_equal(sample["DIC"][0].numpy(), expected)
        assert dm.caches["val"].capacity == 4  # only the kept validation volumes
    finally:
        dm.teardown("fit")


def test_fit_with_trainer(ctmc_root):
    dm = make_module(ctmc_root)
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
    assert model.batch_sizes == [4, 4]


def test_missing_channel_is_named(ctmc_root):
    dm = make_module(ctmc_root, channel_name="Phase3D")
    with pytest.raises(ValueError, match="Phase3D"):
        dm.setup("fit")


def test_bad_subsample_ratio():
    with pytest.raises(ValueError, match="val_subsample_ratio"):
        CTMCv1DataModule("a", "b", [], [], [], [], val_subsample_ratio=0)


def test_training_keeps_the_last_partial_batch(ctmc_root):
    # 0.1.0: 16 training volumes in batches of 5 give 5, 5, 5, 1
    dm = make_module(ctmc_root, batch_size=5)
    dm.setup("fit")
    try:
        assert [len(b["DIC"]) for b in dm.train_dataloader()] == [5, 5, 5, 1]
    finally:
        dm.teardown("fit")


def test_batches_carry_no_normalization_metadata(ctmc_root):
    # 0.1.0: CTMC-v1 batches hold the channel only (no norm_meta), even if the plate has it
    dm = make_module(ctmc_root)
    dm.setup("fit")
    try:
        batch = next(iter(dm.train_dataloader()))
        assert "norm_meta" not in batch and batch["DIC"].shape[1:] == (1, *SHAPE[2:])
    finally:
        dm.teardown("fit")
