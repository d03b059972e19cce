"""ClassificationDataset / DataModule on a real synthetic plate and annotation CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from viscy_data.cell_classification import ClassificationDataModule, ClassificationDataset
from viscy_data.synthetic import write_synthetic_plate

SHAPE = (3, 2, 8, 96, 96)


@pytest.fixture(scope="module")
def annotated_plate(tmp_path_factory):
    root = tmp_path_factory.mktemp("classification")
    plate = write_synthetic_plate(
        root / "plate.zarr",
        shape=SHAPE,
        channel_names=("Phase3D", "GFP"),
        wells=(("A", "1"), ("B", "1")),
        fovs_per_well=1,
        version="0.5",
        seed=3,
        cells_per_fov=3,
    )
    annotation = plate.cells[["fov_name", "track_id", "t", "id", "z", "y", "x", "infection_state"]]
    annotation = annotation.copy()
    annotation.loc[annotation.index[0], "infection_state"] = "unknown"  # unlabeled cell
    csv = root / "annotation.csv"
    annotation.to_csv(csv, index=False)
    return plate, csv, annotation


def _datamodule(plate, csv, **kwargs) -> ClassificationDataModule:
    options = {
        "image_path": plate.path,
        "annotation_path": csv,
        "val_fovs": [plate.fov_names[1]],
        "channel_name": "GFP",
        "z_range": (2, 6),
        "train_exclude_timepoints": [2],
        "train_transforms": None,
        "val_transforms": None,
        "initial_yx_patch_size": (32, 32),
        "batch_size": 4,
        "num_workers": 0,
    }
    options.update(kwargs)
    return ClassificationDataModule(**options)


class _Classifier(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen = []

    def _logits(self, img):
        return self.layer(img.mean(dim=(1, 2, 3, 4)).unsqueeze(1))  # (B, 1), as labels

    def training_step(self, batch, batch_idx):
        img, label = batch
        self.seen.append((img.shape, label))
        return torch.nn.functional.binary_cross_entropy_with_logits(self._logits(img), label)

    def validation_step(self, batch, batch_idx):
        self.seen.append((batch[0].shape, batch[1]))

    def predict_step(self, batch, batch_idx):
        img, label, index = batch
        return {"logits": self._logits(img), "index": index}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _trainer(**kwargs):
    return Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kwargs,
    )


def test_fit_and_predict_through_trainer(annotated_plate):
    plate, csv, annotation = annotated_plate
    dm = _datamodule(plate, csv, train_transforms=[lambda x: x / 1000.0])
    model = _Classifier()
    _trainer(fast_dev_run=True).fit(model, datamodule=dm)
    assert len(model.seen) == 2
    (shape, labels), _ = model.seen
    assert shape == (4, 1, 4, 32, 32)
    assert labels.shape == (4, 1)
    assert set(labels.flatten().tolist()) <= {0.0, 1.0}
    train = dm.train_dataset.annotation
    assert set(train["fov_name"]) == {plate.fov_names[0]}
    assert 2 not in set(train["t"])  # excluded timepoint
    assert (train["infection_state"] >= 0).all()  # unknown labels left out of fit
    predictions = _trainer().predict(model, datamodule=dm)
    n = sum(len(p["logits"]) for p in predictions)
    assert n == len(annotation)  # predict covers every annotated cell
    assert set(predictions[0]["index"]) >= {"fov_name", "track_id", "t", "y", "x"}


def test_labels_and_patches(annotated_plate):
    from iohub.ngff import open_ome_zarr

    plate, csv, annotation = annotated_plate
    with open_ome_zarr(plate.path, mode="r") as store:
        cells = annotation.iloc[1:6].copy()
        # 0.1.0 centers the patch on the truncated centroid: int(40.9) = 40, not 41
        cells.loc[cells.index[0], ["y", "x"]] = [40.9, 50.7]
        dataset = ClassificationDataset(
            store, cells, "GFP", (2, 6), None, (32, 32), return_indices=True
        )
        img, label, index = dataset[0]
        row = cells.iloc[0]
        assert label.shape == (1,) and label.dtype == torch.float32  # as in 0.1.0
        assert float(label) == (1.0 if row["infection_state"] == "infected" else 0.0)
        y0, x0 = 40 - 16, 50 - 16
        raw = np.asarray(
            store[row["fov_name"]]["0"][int(row["t"]), 1:2, 2:6, y0 : y0 + 32, x0 : x0 + 32]
        ).astype(np.float32)
        stats = store[row["fov_name"]].zattrs["normalization"]["GFP"]["fov_statistics"]
    # 0.1.0 z-scores with the FOV's mean and std of the channel
    expected = (raw - np.float32(stats["mean"])) / np.float32(stats["std"])
    np.testing.assert_allclose(img.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert abs(float(img.mean())) < 5  # normalized, not raw counts
    assert index["track_id"] == row["track_id"]
    batch = dataset.__getitems__([0, 1, 2])
    assert len(batch) == 3
    torch.testing.assert_close(batch[0][0], img)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: a.drop(columns="infection_state"), "no label column 'infection_state'"),
        (lambda a: a.assign(infection_state="sick"), "neither integers nor one of"),
        (lambda a: a.assign(fov_name="Z/9/9"), r"FOV\(s\) \['Z/9/9'\] are not in"),
        (lambda a: a.assign(t=SHAPE[0]), "'t' is beyond"),
        (lambda a: a.assign(y=500.0), "'y' is outside the image"),
        (lambda a: a.drop(columns="x"), r"lacks column\(s\) \['x'\]"),
    ],
)
def test_bad_annotation_fails_at_setup(annotated_plate, tmp_path, change, match):
    plate, _, annotation = annotated_plate
    csv = tmp_path / "bad.csv"
    change(annotation.copy()).to_csv(csv, index=False)
    with pytest.raises(ValueError, match=match) as err:
        _datamodule(plate, csv).setup("fit")
    assert "bad.csv" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"z_range": (6, 10)}, "outside the Z stack"),
        ({"initial_yx_patch_size": (128, 32)}, "larger than the image"),
        ({"channel_name": "RFP"}, "Unknown channel 'RFP'"),
        ({"val_fovs": ["C/1/0"]}, r"val_fovs \['C/1/0'\]"),
    ],
)
def test_bad_options_fail_at_setup(annotated_plate, kwargs, match):
    plate, csv, _ = annotated_plate
    with pytest.raises(ValueError, match=match):
        _datamodule(plate, csv, **kwargs).setup("fit")


def test_missing_files(annotated_plate, tmp_path):
    plate, csv, _ = annotated_plate
    with pytest.raises(FileNotFoundError, match="Annotation CSV not found"):
        _datamodule(plate, tmp_path / "none.csv").setup("fit")
    with pytest.raises(FileNotFoundError, match="plate not found"):
        _datamodule(plate, csv, image_path=tmp_path / "none.zarr").setup("fit")
    pd.DataFrame().to_csv(tmp_path / "empty.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="Cannot read annotation CSV"):
        _datamodule(plate, tmp_path / "empty.csv").setup("fit")


def test_setup_stages_as_in_0_1_0(annotated_plate):
    plate, csv, _ = annotated_plate
    dm = _datamodule(plate, csv)
    with pytest.raises(ValueError, match="Unknown stage: unknown"):  # 0.1.0: ValueError
        dm.setup("unknown")
    with pytest.raises(NotImplementedError):
        dm.setup("test")
