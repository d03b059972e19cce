"""SegmentationDataModule on a prediction plate and a ground-truth plate written by the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr
from lightning.pytorch import LightningModule, Trainer

from viscy_data.segmentation import SegmentationDataModule, SegmentationDataset

FOVS = ("A/1/0", "B/2/0")
SHAPE = (2, 1, 3, 16, 16)  # T, C, Z, Y, X


def write_labels(path, channel: str, seed: int, fovs=FOVS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {}
    with open_ome_zarr(path, layout="hcs", mode="w-", channel_names=[channel]) as plate:
        for fov in fovs:
            labels = rng.integers(0, 4, SHAPE, dtype=np.uint16)
            plate.create_position(*fov.split("/")).create_image("0", labels)
            data[fov] = labels
    return data


@pytest.fixture(scope="session")
def plates(tmp_path_factory):
    root = tmp_path_factory.mktemp("segmentation")
    pred = write_labels(root / "pred.zarr", "nuclei_pred", seed=0)
    target = write_labels(root / "target.zarr", "nuclei_labels", seed=1)
    return root, pred, target


def make_module(root, **kwargs) -> SegmentationDataModule:
    settings = dict(
        pred_dataset=root / "pred.zarr",
        target_dataset=root / "target.zarr",
        pred_channel="nuclei_pred",
        target_channel="nuclei_labels",
        pred_z_slice=1,
        target_z_slice=2,
        batch_size=2,
        num_workers=0,
    )
    settings.update(kwargs)
    return SegmentationDataModule(**settings)


class Agreement(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.agreement: list[float] = []
        self.shapes: list[tuple] = []

    def test_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch["pred"].shape))
        self.agreement.append(float((batch["pred"] == batch["target"]).float().mean()))


def test_setup_pairs_fovs_and_timepoints(plates):
    root, pred, target = plates
    dm = make_module(root)
    dm.setup("test")
    ds = dm.test_dataset
    assert len(ds) == len(FOVS) * SHAPE[0]
    sample = ds[3]  # second FOV, t=1
    assert sample["position_idx"] == 1
    assert sample["time_idx"] == 1
    assert sample["pred"].dtype == torch.int32
    np.testing.assert_array_equal(sample["pred"].numpy(), pred["B/2/0"][1, 0, 1])
    np.testing.assert_array_equal(sample["target"].numpy(), target["B/2/0"][1, 0, 2])


def test_z_slice_keeps_the_z_axis(plates):
    root, pred, _ = plates
    with (
        open_ome_zarr(root / "pred.zarr", mode="r") as p,
        open_ome_zarr(root / "target.zarr", mode="r") as t,
    ):
        ds = SegmentationDataset(p, t, "nuclei_pred", "nuclei_labels", slice(0, 2), -1)
        sample = ds[0]
    assert sample["pred"].shape == (2, *SHAPE[3:])
    np.testing.assert_array_equal(sample["pred"].numpy(), pred["A/1/0"][0, 0, 0:2])
    assert sample["target"].shape == SHAPE[3:]


def test_test_loop_with_trainer(plates):
    root, pred, target = plates
    dm = make_module(root)
    model = Agreement()
    trainer = Trainer(
        accelerator="cpu",
        fast_dev_run=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(model, datamodule=dm)
    assert model.shapes == [(2, *SHAPE[3:])]
    expected = np.mean(
        [(pred["A/1/0"][t, 0, 1] == target["A/1/0"][t, 0, 2]).mean() for t in range(SHAPE[0])]
    )
    assert model.agreement[0] == pytest.approx(expected)


def test_wrong_channel_is_named(plates):
    root, _, _ = plates
    dm = make_module(root, target_channel="membrane")
    with pytest.raises(ValueError, match="membrane"):
        dm.setup("test")


def test_fov_missing_from_target_is_named(plates, tmp_path):
    root, _, _ = plates
    write_labels(tmp_path / "short.zarr", "nuclei_labels", seed=2, fovs=FOVS[:1])
    dm = make_module(root, target_dataset=tmp_path / "short.zarr")
    with pytest.raises(ValueError, match="B/2/0"):
        dm.setup("test")
