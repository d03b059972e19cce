import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, Dataset

from viscy_utils.callbacks import EmbeddingWriter, HCSPredictionWriter, ImageGridLogger
from viscy_utils.trainer import VisCyTrainer

from ._tiny_lightning import TinyPlateDataModule, TinyRegressor

INDEX_COLUMNS = ["fov_name", "track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"]


class _CellDataset(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        index = {
            "fov_name": f"A/1/{i % 2}", "track_id": i // 2, "t": i % 3, "id": i,
            "parent_track_id": -1, "parent_id": -1, "z": 0, "y": 10 + i, "x": 20 + i,
        }  # fmt: skip
        return {"anchor": torch.full((1, 1, 4, 4), float(i)), "index": index}


class _TinyEmbedder(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(16, 6)
        self.projector = torch.nn.Linear(6, 3)
        self.predict_calls = 0

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        self.predict_calls += 1
        features = self.encoder(batch["anchor"].flatten(1))
        return {
            "features": features,
            "projections": self.projector(features),
            "index": batch["index"],
        }


def _trainer(tmp_path, callbacks, **kwargs):
    return VisCyTrainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path,
        callbacks=callbacks, **kwargs,
    )  # fmt: skip


def test_embedding_writer_anndata_and_overwrite(tmp_path):
    ad = pytest.importorskip("anndata")
    out = tmp_path / "embeddings.zarr"
    model = _TinyEmbedder()
    loader = DataLoader(_CellDataset(10), batch_size=4)
    writer = EmbeddingWriter(out, pca_kwargs={"n_components": 2})
    _trainer(tmp_path, [writer]).predict(model, loader, return_predictions=False)
    adata = ad.read_zarr(out)
    assert adata.X.shape == (10, 6)
    assert adata.obsm["X_projections"].shape == (10, 3)
    assert adata.obsm["X_pca"].shape == (10, 2)
    assert list(adata.obs.columns) == INDEX_COLUMNS
    assert adata.obs["fov_name"].tolist() == [f"A/1/{i % 2}" for i in range(10)]
    assert adata.obs["id"].tolist() == list(range(10))
    expected = model.encoder(
        torch.stack([_CellDataset(10)[i]["anchor"] for i in range(10)]).flatten(1)
    )
    np.testing.assert_allclose(adata.X, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left

    with pytest.raises(ValueError, match="write_interval"):
        EmbeddingWriter(tmp_path / "other.zarr", write_interval="batch")
    # existing output: refused before any prediction runs, and left untouched
    model.predict_calls = 0
    with pytest.raises(FileExistsError, match="embeddings.zarr"):
        _trainer(tmp_path, [EmbeddingWriter(out)]).predict(model, loader)
    assert model.predict_calls == 0
    assert ad.read_zarr(out).n_obs == 10
    # overwrite=True replaces it
    small = DataLoader(_CellDataset(5), batch_size=4)
    _trainer(tmp_path, [EmbeddingWriter(out, overwrite=True)]).predict(model, small)
    replaced = ad.read_zarr(out)
    assert replaced.n_obs == 5
    assert "X_pca" not in replaced.obsm


def test_hcs_prediction_writer_mirrors_plate(plate_path, tmp_path):
    dm = TinyPlateDataModule(str(plate_path), batch_size=3)
    model = TinyRegressor()
    out = tmp_path / "pred.zarr"
    writer = HCSPredictionWriter(str(out), write_input=True)
    _trainer(tmp_path, [writer]).predict(model, datamodule=dm, return_predictions=False)
    with open_ome_zarr(plate_path, mode="r") as src, open_ome_zarr(out, mode="r") as pred:
        assert pred.channel_names == ["Phase3D", "Phase3D_prediction"]
        src_fovs = dict(src.positions())
        pred_fovs = dict(pred.positions())
        assert sorted(pred_fovs) == sorted(src_fovs)
        for name, pos in pred_fovs.items():
            raw = np.asarray(src_fovs[name]["0"][:, :1]).astype(np.float32)
            written = np.asarray(pos["0"][:])
            assert written.shape[0] == raw.shape[0]
            assert written.shape[2:] == raw.shape[2:]
            np.testing.assert_array_equal(written[:, :1], raw)
            with torch.no_grad():
                expected = model(torch.from_numpy(raw / 1000.0)).numpy()
            np.testing.assert_allclose(written[:, 1:], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(FileExistsError, match="pred.zarr"):
        _trainer(tmp_path, [HCSPredictionWriter(str(out))]).predict(model, datamodule=dm)


def test_image_grid_logger_and_default_tensorboard(plate_path, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger_cb = ImageGridLogger(keys=("source",), log_prediction=True, samples_per_batch=2)
    trainer = VisCyTrainer(
        accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
        num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, default_root_dir=tmp_path, callbacks=[logger_cb],
        log_every_n_steps=1,
    )  # fmt: skip
    assert isinstance(trainer.logger, TensorBoardLogger)
    trainer.fit(TinyRegressor(), datamodule=TinyPlateDataModule(str(plate_path)))
    events = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"samples/train", "samples/val"} <= set(events.Tags()["images"])
    image = events.Images("samples/train")[0]
    assert image.height == 2 * 32  # two samples, one row each
    assert image.width == 2 * 32  # source tile + prediction tile


def test_export_onnx_dynamic_batch(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    trainer = _trainer(tmp_path, [])
    path = trainer.export(TinyRegressor(), tmp_path / "model.onnx")
    graph = onnx.load(path).graph
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param  # symbolic, not a fixed size
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == [1, 2, 16, 16]
    with pytest.raises(FileExistsError):
        trainer.export(TinyRegressor(), path)


class _ClusteredEmbedder(LightningModule):
    """Embeds cells of two labels into two well-separated clusters; tracks drift slowly."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor):
        features = x.flatten(1)[:, :8] * self.scale
        return features, features[:, :4]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return (self(batch["anchor"])[0] ** 2).mean() * 0.0 + self.scale.sum() * 0.0

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


class _LabeledCells(Dataset):
    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.rows = []
        for track in range(8):
            label = track % 2
            start = rng.normal(size=8) + 10 * label
            for t in range(5):
                feat = start + 0.05 * t
                self.rows.append((feat, label, track, t))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        feat, label, track, t = self.rows[i]
        anchor = torch.zeros(1, 1, 4, 4)
        anchor.view(-1)[:8] = torch.as_tensor(feat, dtype=torch.float32)
        index = {"fov_name": "A/1/0", "marker": int(label), "global_track_id": track, "t": t}
        return {"anchor": anchor, "index": index}


def test_snapshot_and_online_eval(tmp_path):
    ad = pytest.importorskip("anndata")
    from viscy_utils.callbacks import EmbeddingSnapshotCallback, OnlineEvalCallback

    snapshot = EmbeddingSnapshotCallback(tmp_path / "snapshots", every_n_epochs=1)
    online = OnlineEvalCallback(every_n_epochs=1, k=3)
    loader = DataLoader(_LabeledCells(), batch_size=8)
    trainer = _trainer(
        tmp_path, [snapshot, online], max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0
    )
    trainer.fit(_ClusteredEmbedder(), loader, loader)
    adata = ad.read_zarr(tmp_path / "snapshots" / "epoch_0000.zarr")
    assert adata.X.shape == (40, 8)
    assert adata.obsm["X_pca"].shape == (40, 2)
    assert adata.obs["global_track_id"].tolist() == [r[2] for r in _LabeledCells().rows]
    images = np.load(tmp_path / "snapshots" / "epoch_0000_images.npy")
    assert images.shape == (40, 1, 4, 4)
    assert online.last_metrics["online_eval/knn_accuracy"] > 0.95
    assert online.last_metrics["online_eval/temporal_smoothness"] < 0.1
    assert trainer.callback_metrics["online_eval/knn_accuracy"] > 0.95


def test_hcs_prediction_writer_with_hcs_datamodule(plate_path, tmp_path):
    """Predictions of viscy_data.HCSDataModule batches (collated HCSStackIndex) land in place."""
    from viscy_data import HCSDataModule

    from ._tiny_lightning import TinyTranslator

    dm = HCSDataModule(
        str(plate_path), source_channel="Phase3D", target_channel="GFP", z_window_size=1,
        batch_size=4, num_workers=0, yx_patch_size=(16, 16), pin_memory=False,
    )  # fmt: skip
    model = TinyTranslator()
    out = tmp_path / "translated.zarr"
    _trainer(tmp_path, [HCSPredictionWriter(str(out))]).predict(model, datamodule=dm)
    with open_ome_zarr(plate_path, mode="r") as src, open_ome_zarr(out, mode="r") as pred:
        assert pred.channel_names == ["GFP_prediction"]
        for name, pos in src.positions():
            raw = torch.from_numpy(np.asarray(pos["0"][:, :1]).astype(np.float32))
            written = np.asarray(pred[name]["0"][:])
            with torch.no_grad():
                expected = model(raw).numpy()  # a 1x1x1 conv: slices are independent
            np.testing.assert_allclose(written, expected, rtol=1e-4, atol=1e-3)
