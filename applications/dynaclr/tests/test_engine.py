"""ContrastiveModule with a tiny encoder and a real Lightning Trainer."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dynaclr import ContrastiveModule, TinyEncoder
from dynaclr.engine import is_pair_loss, render_triplet_grid

SHAPE = (2, 1, 16, 16)  # C, Z, Y, X


class _TripletTensors(Dataset):
    """Anchors are random images, positives slightly perturbed copies."""

    def __init__(self, n: int = 16, seed: int = 0, predict: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.anchor = torch.rand(n, *SHAPE, generator=g)
        self.positive = self.anchor + 0.05 * torch.randn(n, *SHAPE, generator=g)
        self.negative = torch.rand(n, *SHAPE, generator=g)
        self.predict = predict

    def __len__(self) -> int:
        return len(self.anchor)

    def __getitem__(self, i: int) -> dict:
        index = {"fov_name": f"A/1/{i % 2}", "track_id": i, "t": i % 3}
        if self.predict:
            return {"anchor": self.anchor[i], "index": index}
        return {
            "anchor": self.anchor[i],
            "positive": self.positive[i],
            "negative": self.negative[i],
        }


def _loader(predict: bool = False, batch_size: int = 8) -> DataLoader:
    return DataLoader(_TripletTensors(predict=predict), batch_size=batch_size)


def _ntxent():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    return pml.NTXentLoss(temperature=0.5)


def _trainer(tmp_path, **kwargs) -> Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    defaults.update(kwargs)
    return Trainer(**defaults)


def test_loss_kind_detection():
    assert not is_pair_loss(nn.TripletMarginLoss())
    assert is_pair_loss(_ntxent())


@pytest.mark.parametrize("loss_kind", ["triplet", "ntxent"])
def test_fit_logs_loss_and_similarities(tmp_path, loss_kind):
    loss = nn.TripletMarginLoss(margin=0.5) if loss_kind == "triplet" else _ntxent()
    module = ContrastiveModule(TinyEncoder(width=4), loss_function=loss, lr=1e-3)
    before = [p.detach().clone() for p in module.parameters()]
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(module, _loader(), _loader())
    metrics = trainer.callback_metrics
    for key in (
        "loss/train_epoch",
        "loss/val",
        "metrics/cosine_similarity_positive/train",
        "metrics/cosine_similarity_negative/train",
        "metrics/cosine_similarity_positive/val",
    ):
        assert key in metrics, key
        assert torch.isfinite(metrics[key])
    # positives are near-copies of the anchors, negatives unrelated images
    assert (
        metrics["metrics/cosine_similarity_positive/val"]
        > metrics["metrics/cosine_similarity_negative/val"]
    )
    changed = [not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True)]
    assert any(changed)


def test_triplet_loss_without_negative_raises():
    module = ContrastiveModule(TinyEncoder(width=4), loss_function=nn.TripletMarginLoss())
    batch = {"anchor": torch.rand(2, *SHAPE), "positive": torch.rand(2, *SHAPE)}
    with pytest.raises(KeyError, match="negative"):
        module._contrastive_step(batch, "train")


def test_pair_loss_sees_in_batch_negatives():
    """The NT-Xent path gives the loss 2B rows with labels pairing anchor i and positive i."""
    seen = {}

    class Recorder(nn.Module):
        def forward(self, embeddings, labels):
            seen["shape"] = tuple(embeddings.shape)
            seen["labels"] = labels.tolist()
            return embeddings.sum() * 0

    module = ContrastiveModule(TinyEncoder(width=4, projection_dim=8), loss_function=Recorder())
    module.log = lambda *a, **k: None
    module.log_dict = lambda *a, **k: None
    batch = {"anchor": torch.rand(3, *SHAPE), "positive": torch.rand(3, *SHAPE)}
    module._contrastive_step(batch, "train")
    assert seen["shape"] == (6, 8)
    assert seen["labels"] == [0, 1, 2, 0, 1, 2]


def test_warmup_cosine_schedule_is_applied(tmp_path):
    module = ContrastiveModule(
        TinyEncoder(width=4), _ntxent(), lr=0.1, schedule="WarmupCosine", warmup_epochs=2
    )
    seen = []

    class LrTap(__import__("lightning").pytorch.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = _trainer(
        tmp_path, max_epochs=6, limit_train_batches=1, limit_val_batches=0, callbacks=[LrTap()]
    )
    trainer.fit(module, _loader())
    expected = [0.1 / 3, 0.2 / 3]
    expected += [0.05 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert seen == pytest.approx(expected)


def test_constant_schedule_keeps_lr(tmp_path):
    module = ContrastiveModule(TinyEncoder(width=4), _ntxent(), lr=0.01, schedule="Constant")
    trainer = _trainer(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(module, _loader())
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01)
    assert not trainer.lr_scheduler_configs


def test_unknown_schedule_rejected():
    with pytest.raises(ValueError, match="schedule"):
        ContrastiveModule(TinyEncoder(), schedule="linear")


def test_image_grid_logged_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    module = ContrastiveModule(
        TinyEncoder(width=4),
        nn.TripletMarginLoss(),
        log_batches_per_epoch=2,
        log_samples_per_batch=2,
        log_images_every_n_epochs=1,
    )
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = _trainer(
        tmp_path, logger=logger, max_epochs=1, limit_train_batches=2, limit_val_batches=1
    )
    trainer.fit(module, _loader(), _loader())
    acc = event_accumulator.EventAccumulator(logger.log_dir)
    acc.Reload()
    tags = acc.Tags()["images"]
    assert "train_samples" in tags
    image = acc.Images("train_samples")[0]
    # 4 samples (2 batches x 2) -> 4 rows of 16 px + gaps; 3 views x 2 channels columns
    assert image.height == 4 * (16 + 2)
    assert image.width == 6 * (16 + 2)


def test_render_triplet_grid_shape():
    views = {"anchor": torch.rand(3, 2, 5, 8, 10), "positive": torch.rand(3, 2, 5, 8, 10)}
    grid = render_triplet_grid(views, max_samples=2, gap=1)
    assert grid.shape == (2 * 9, 4 * 11, 3)
    assert grid.dtype.name == "uint8"


def test_predict_and_checkpoint_roundtrip(tmp_path):
    module = ContrastiveModule(TinyEncoder(width=4), _ntxent(), lr=1e-3)
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(module, _loader())
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)

    module.eval()
    predictions = _trainer(tmp_path).predict(module, _loader(predict=True, batch_size=5))
    assert len(predictions) == 4
    first = predictions[0]
    assert set(first) == {"features", "projections", "index"}
    assert first["features"].shape == (5, 64)
    assert first["projections"].shape == (5, 32)
    assert first["index"]["track_id"].tolist() == [0, 1, 2, 3, 4]

    # zero missing / unexpected keys when loading for prediction
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    fresh = ContrastiveModule(TinyEncoder(width=4), _ntxent())
    result = fresh.load_state_dict(state, strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys == []
    loaded = ContrastiveModule.load_from_checkpoint(
        ckpt, encoder=TinyEncoder(width=4), loss_function=_ntxent()
    )
    assert loaded.lr == pytest.approx(1e-3)
    loaded.eval()
    again = _trainer(tmp_path).predict(loaded, _loader(predict=True, batch_size=5))
    torch.testing.assert_close(again[0]["features"], first["features"], rtol=0, atol=0)
