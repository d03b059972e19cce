"""CellDivisionTripletDataset / DataModule on real .npy files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from viscy_data.cell_division_triplet import (
    CellDivisionTripletDataModule,
    CellDivisionTripletDataset,
)

N_FILES, N_T, N_C, SIZE = 4, 5, 2, 40
KEYS = ("anchor", "positive", "negative")


def _code(patch: torch.Tensor) -> tuple[int, int]:
    """(file, t) encoded in the constant value of channel 0: file * 1000 + t * 10."""
    value = int(round(float(patch[0].mean())))
    return value // 1000, (value % 1000) // 10


@pytest.fixture(scope="module")
def npy_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("division")
    for k in range(N_FILES):
        t = np.arange(N_T, dtype=np.float32).reshape(-1, 1, 1, 1)
        c = np.arange(N_C, dtype=np.float32).reshape(1, -1, 1, 1)
        array = np.broadcast_to(k * 1000 + t * 10 + c, (N_T, N_C, SIZE, SIZE)).copy()
        np.save(root / f"cell_{k}.npy", array)
    return root


class _Tiny(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Conv3d(N_C, 2, 1)
        self.batches = []

    def training_step(self, batch, batch_idx):
        self.batches.append(batch)
        a, p, n = (self.layer(batch[k]).mean(dim=(2, 3, 4)) for k in KEYS)
        return torch.nn.functional.triplet_margin_loss(a, p, n)

    def validation_step(self, batch, batch_idx):
        self.batches.append(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_fit_through_trainer(npy_dir):
    dm = CellDivisionTripletDataModule(
        data_path=str(npy_dir),
        source_channel=["bf", "h2b"],
        final_yx_patch_size=(32, 32),
        batch_size=3,
        num_workers=0,
        time_interval=1,
        split_ratio=0.5,
    )
    model = _Tiny()
    Trainer(
        accelerator="cpu",
        fast_dev_run=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(model, datamodule=dm)
    assert len(model.batches) == 2  # one train, one validation batch
    for batch in model.batches:
        for key in KEYS:
            assert batch[key].shape == (3, N_C, 1, 32, 32)
    assert len(dm.train_dataset.data_paths) == 2
    assert len(dm.val_dataset.data_paths) == 2
    assert set(dm.train_dataset.data_paths).isdisjoint(dm.val_dataset.data_paths)


@pytest.mark.parametrize("time_interval", [1, 3, "any"])
def test_positive_same_cell_negative_other_cell(npy_dir, time_interval):
    files = sorted(npy_dir.glob("*.npy"))
    dataset = CellDivisionTripletDataset(files, ["bf", "h2b"], time_interval=time_interval)
    dt = 0 if time_interval == "any" else time_interval
    assert len(dataset) == N_FILES * (N_T - dt)
    for i in range(len(dataset)):
        sample = dataset[i]
        k, t = _code(sample["anchor"])
        assert _code(sample["positive"]) == (k, t + dt)
        k_neg, _ = _code(sample["negative"])
        assert k_neg != k
        assert sample["anchor"].shape == (N_C, 1, SIZE, SIZE)
    # reproducible: the same index gives the same negative
    assert torch.equal(dataset[3]["negative"], dataset[3]["negative"])


def test_channel_selection_output_2d_and_transforms(npy_dir):
    files = sorted(npy_dir.glob("*.npy"))

    def plus_one(sample):
        return {k: v + 1 for k, v in sample.items()}

    dataset = CellDivisionTripletDataset(
        files,
        ["h2b"],
        positive_transform=plus_one,
        output_2d=True,
        array_channel_names=["bf", "h2b"],
        return_negative=False,
    )
    sample = dataset[0]
    assert "negative" not in sample
    assert sample["anchor"].shape == (1, SIZE, SIZE)
    assert float(sample["anchor"].mean()) == 1.0  # channel 1 of file 0 at t=0
    assert float(sample["positive"].mean()) == 2.0  # transformed


def test_predict_and_on_device_crop(npy_dir):
    dm = CellDivisionTripletDataModule(
        str(npy_dir),
        ["bf", "h2b"],
        final_yx_patch_size=(16, 24),
        batch_size=4,
        num_workers=0,
        output_2d=True,
    )
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    batch = dm.on_after_batch_transfer(batch, 0)
    assert batch["anchor"].shape == (4, N_C, 16, 24)
    assert batch["index"]["fov_name"] == ["cell_0"] * 4
    assert batch["index"]["t"].tolist() == [0, 1, 2, 3]
    assert len(dm.predict_dataset) == N_FILES * N_T


def test_bad_inputs(npy_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        CellDivisionTripletDataModule(str(tmp_path / "none"), ["bf", "h2b"]).setup("fit")
    with pytest.raises(FileNotFoundError, match="No .npy files"):
        CellDivisionTripletDataModule(str(tmp_path), ["bf", "h2b"]).setup("fit")
    with pytest.raises(ValueError, match=r"has 2 channels but 1 channel names"):
        CellDivisionTripletDataModule(str(npy_dir), ["bf"]).setup("fit")
    with pytest.raises(ValueError, match="larger than the arrays"):
        CellDivisionTripletDataModule(
            str(npy_dir), ["bf", "h2b"], final_yx_patch_size=(64, 64)
        ).setup("fit")
    with pytest.raises(ValueError, match="shorter than"):
        CellDivisionTripletDataModule(str(npy_dir), ["bf", "h2b"], time_interval=N_T).setup("fit")
    with pytest.raises(ValueError, match="time_interval"):
        CellDivisionTripletDataModule(str(npy_dir), ["bf", "h2b"], time_interval=0)
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "flat.npy", np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match=r"flat.npy: expected a \(T, C, Y, X\) array"):
        CellDivisionTripletDataModule(str(bad), ["bf"]).setup("fit")
    (bad / "flat.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="Cannot read cell time series .*flat.npy"):
        CellDivisionTripletDataModule(str(bad), ["bf"]).setup("fit")


def test_training_drops_the_last_partial_batch(npy_dir):
    # 0.1.0: the training loader drops the last partial batch, validation keeps it
    dm = CellDivisionTripletDataModule(
        str(npy_dir),
        ["bf", "h2b"],
        final_yx_patch_size=(32, 32),
        batch_size=3,
        num_workers=0,
        time_interval=1,
        split_ratio=0.5,
    )
    dm.setup("fit")
    n_train, n_val = len(dm.train_dataset), len(dm.val_dataset)
    assert n_train % 3 and n_val % 3
    assert [len(b["anchor"]) for b in dm.train_dataloader()] == [3] * (n_train // 3)
    val = [len(b["anchor"]) for b in dm.val_dataloader()]
    assert val == [3] * (n_val // 3) + [n_val % 3]


def test_predict_index_names_the_frame_id_and_unknown_stage(npy_dir):
    # 0.1.0's predict index is {"fov_name", "id"} with id the frame; ours also keeps "t"
    dm = CellDivisionTripletDataModule(
        str(npy_dir), ["bf", "h2b"], final_yx_patch_size=(32, 32), batch_size=4, num_workers=0
    )
    dm.setup("predict")
    index = next(iter(dm.predict_dataloader()))["index"]
    assert index["id"].tolist() == index["t"].tolist() == [0, 1, 2, 3]
    with pytest.raises(NotImplementedError, match="unknown stage 'bogus'"):  # as 0.1.0
        dm.setup("bogus")
