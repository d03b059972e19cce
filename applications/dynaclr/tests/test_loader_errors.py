"""A damaged chunk in a multi-experiment plate raises in ``trainer.fit`` (threads, fork, spawn)."""

from __future__ import annotations

import functools
import re

import pytest
import torch
import yaml
from lightning.pytorch import LightningModule, Trainer

from viscy_data.loading import thread_data_loader
from viscy_data.synthetic import write_synthetic_plate


@pytest.fixture(scope="module")
def damaged_registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiexp_damaged")
    experiments = []
    for i, name in enumerate(("exp_a", "exp_b")):
        plate = write_synthetic_plate(
            root / f"{name}.zarr",
            shape=(4, 2, 1, 48, 48),
            fovs_per_well=1,
            seed=20 + i,
            tracks_path=root / f"{name}_tracks",
            cells_per_fov=4,
        )
        experiments.append(
            {
                "name": name,
                "data_path": str(plate.path),
                "tracks_path": str(plate.tracks_path),
                "channel_names": ["Phase3D", "GFP"],
                "condition_wells": {"uninfected": ["A/1"], "infected": ["B/1"]},
                "interval_minutes": 30,
            }
        )
    chunks = [p for p in (root / "exp_a.zarr").rglob("c/*/*/*/*/*") if p.is_file()]
    assert len(chunks) == 2 * 4 * 2
    for chunk in chunks:
        chunk.write_bytes(b"\x02\x01garbage" * 16)
    path = root / "experiments.yml"
    path.write_text(yaml.safe_dump({"experiments": experiments}))
    return path


class _AnyBatch(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        return self.w * sum(v.float().mean() for v in batch.values() if torch.is_tensor(v))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("context", ["threads", "fork", "spawn"])
def test_multi_experiment_damaged_chunk_raises_in_fit(damaged_registry, monkeypatch, context):
    from dynaclr import datamodule

    if context != "threads":
        builder = functools.partial(thread_data_loader, multiprocessing_context=context)
        monkeypatch.setattr(datamodule, "thread_data_loader", builder)
    dm = datamodule.MultiExperimentDataModule(
        experiments_yaml=str(damaged_registry),
        val_experiments=["exp_b"],
        z_range=(0, 1),
        yx_patch_size=(32, 32),
        final_yx_patch_size=(32, 32),
        tau_range=(0.5, 1.0),
        batch_size=4,
        num_workers=1,
    )
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    with pytest.raises(Exception, match="Cannot read FOV") as err:
        trainer.fit(_AnyBatch(), datamodule=dm)
    assert re.search(r"exp_a\.zarr/[AB]/1/0/0/c/\d/\d/0/0/0", str(err.value)), str(err.value)
