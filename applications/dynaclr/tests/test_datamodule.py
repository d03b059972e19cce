"""MultiExperimentDataModule: experiment-level split, sampler wiring, device transforms,
channel dropout, and a real Lightning fit on three synthetic experiments."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dynaclr.datamodule import MultiExperimentDataModule
from viscy_data.sampler import FlexibleBatchSampler
from viscy_data.synthetic import write_synthetic_plate

PATCH, FINAL = (32, 32), (24, 24)
CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"


@pytest.fixture(scope="module")
def experiments_yaml(tmp_path_factory):
    # laid out as multi_experiment_fit.yml expects: <cwd>/multiexp_demo/exp_*.zarr
    root = tmp_path_factory.mktemp("multiexp_dm") / "multiexp_demo"
    specs = [
        ("exp_a", ("Phase3D", "GFP"), 30),
        ("exp_b", ("Phase3D", "mCherry", "GFP"), 15),
        ("exp_c", ("Phase3D", "GFP"), 20),
    ]
    experiments = []
    for i, (name, channels, interval) in enumerate(specs):
        write_synthetic_plate(
            root / f"{name}.zarr",
            shape=(6, len(channels), 1, 64, 64),
            channel_names=channels,
            fovs_per_well=1,
            seed=10 + i,
            tracks_path=root / f"{name}_tracks",
            cells_per_fov=8,
        )
        experiments.append(
            {
                "name": name,
                "data_path": f"{name}.zarr",
                "tracks_path": f"{name}_tracks",
                "channel_names": list(channels),
                "condition_wells": {"uninfected": ["A/1"], "infected": ["B/1"]},
                "interval_minutes": interval,
            }
        )
    path = root / "test_experiments.yml"
    path.write_text(yaml.safe_dump({"training_channels": "shared", "experiments": experiments}))
    shutil.copy(CONFIGS / "experiments" / "multi_experiment.yml", root / "experiments.yml")
    shutil.copy(CONFIGS / "multi_experiment_fit.yml", root.parent / "multi_experiment_fit.yml")
    return path


def _module(path, **kw):
    args = dict(
        experiments_yaml=str(path),
        val_experiments=["exp_c"],
        yx_patch_size=PATCH,
        final_yx_patch_size=FINAL,
        tau_range=(0.25, 1.0),
        batch_size=8,
        num_workers=0,
        experiment_aware=True,
        condition_balanced=True,
        temporal_enrichment=True,
        temporal_window_hours=1.0,
        leaky=0.0,
    )
    args.update(kw)
    return MultiExperimentDataModule(**args)


@pytest.fixture(scope="module")
def datamodule(experiments_yaml):
    dm = _module(experiments_yaml)
    dm.setup("fit")
    return dm


def test_init_exposes_all_hyperparameters(experiments_yaml):
    values = dict(
        tau_range=(0.5, 1.5),
        tau_decay_rate=3.0,
        experiment_aware=False,
        condition_balanced=False,
        temporal_enrichment=True,
        temporal_window_hours=1.5,
        temporal_global_fraction=0.4,
        hcl_beta=0.7,
        channel_dropout_prob=0.2,
        channel_dropout_channels=[0, 1],
        batch_size=16,
        num_workers=2,
        leaky=0.1,
        experiment_weights={"exp_a": 2.0},
        condition_ratio={"infected": 0.4, "uninfected": 0.6},
        seed=5,
    )
    dm = _module(experiments_yaml, **values)
    for name, value in values.items():
        stored = getattr(dm, name)
        assert (list(stored) if isinstance(value, list) else stored) == value, name
    assert dm.channel_dropout.p == 0.2
    assert dm.channel_dropout.channels == [0, 1]
    # every parameter is typed for Lightning CLI / jsonargparse
    params = inspect.signature(MultiExperimentDataModule.__init__).parameters
    untyped = [n for n, p in params.items() if n != "self" and p.annotation is p.empty]
    assert untyped == []


def test_train_val_split_by_experiment(datamodule):
    train = datamodule.train_dataset.index
    val = datamodule.val_dataset.index
    assert set(train.tracks["experiment"].astype(str)) == {"exp_a", "exp_b"}
    assert set(val.tracks["experiment"].astype(str)) == {"exp_c"}
    train_fovs = set(zip(train.tracks["experiment"], train.tracks["fov_name"], strict=True))
    val_fovs = set(zip(val.tracks["experiment"], val.tracks["fov_name"], strict=True))
    assert not train_fovs & val_fovs
    # the shared channels are resolved over all experiments, train and val alike
    assert datamodule.channel_names == ["Phase3D", "GFP"]
    assert train.registry.active_channels == val.registry.active_channels == ["Phase3D", "GFP"]
    # and no training batch ever holds a val experiment
    experiments = train.valid_anchors["experiment"].astype(str).to_numpy()
    for batch in datamodule.train_sampler():
        assert "exp_c" not in set(experiments[batch])


def test_train_dataloader_uses_flexible_batch_sampler(datamodule):
    from monai.data import ThreadDataLoader

    from viscy_data.loading import identity_collate

    loader = datamodule.train_dataloader()
    assert isinstance(loader, ThreadDataLoader)
    sampler = loader.batch_sampler
    assert isinstance(sampler, FlexibleBatchSampler)
    assert sampler.batch_group_by == ["experiment"]
    assert sampler.stratify_by == ["condition"]
    assert sampler.temporal_enrichment
    assert loader.collate_fn is identity_collate
    batch = next(iter(loader))
    assert batch["anchor"].shape == (8, 2, 1, *PATCH)


def test_val_dataloader_is_sequential(datamodule):
    loader = datamodule.val_dataloader()
    assert not isinstance(loader.batch_sampler, FlexibleBatchSampler)
    seen = [i for b in loader.batch_sampler for i in b]
    assert seen == list(range(len(datamodule.val_dataset)))


def test_on_after_batch_transfer_transforms_and_crop(experiments_yaml):
    calls = []

    def scale(sample):
        calls.append(sorted(k for k in sample if k != "norm_meta"))
        assert "norm_meta" in sample
        return {k: (v * 2 if k != "norm_meta" else v) for k, v in sample.items()}

    dm = _module(experiments_yaml, normalizations=[scale], channel_dropout_prob=0.0)
    dm.setup("fit")
    raw = dm.train_dataset.__getitems__(list(range(4)))
    assert raw["anchor"].dtype == torch.uint16  # plates' dtype through the loader
    anchor = raw["anchor"].float()
    out = dm.on_after_batch_transfer(raw, 0)
    assert calls == [["GFP", "Phase3D"], ["GFP", "Phase3D"]]  # anchor and positive
    assert not any(k.endswith("norm_meta") for k in out)
    assert out["anchor"].shape == (4, 2, 1, *FINAL)
    y0, x0 = (PATCH[0] - FINAL[0]) // 2, (PATCH[1] - FINAL[1]) // 2
    expected = 2 * anchor[..., y0 : y0 + FINAL[0], x0 : x0 + FINAL[1]]
    assert torch.equal(out["anchor"], expected)
    assert dm.on_after_batch_transfer(torch.ones(2), 0).shape == (2,)


def test_channel_dropout_only_in_training(experiments_yaml):
    from types import SimpleNamespace

    dm = _module(experiments_yaml, channel_dropout_channels=[1], channel_dropout_prob=1.0)
    dm.setup("fit")
    raw = dm.train_dataset.__getitems__(list(range(4)))
    dm.trainer = SimpleNamespace(training=True, validating=False, sanity_checking=False)
    out = dm.on_after_batch_transfer({k: v for k, v in raw.items()}, 0)
    assert torch.all(out["anchor"][:, 1] == 0)
    assert torch.all(out["positive"][:, 1] == 0)
    assert out["anchor"][:, 0].abs().sum() > 0
    dm.trainer = SimpleNamespace(training=False, validating=True, sanity_checking=False)
    raw = dm.train_dataset.__getitems__(list(range(4)))
    out = dm.on_after_batch_transfer(raw, 0)
    assert out["anchor"][:, 1].abs().sum() > 0


def test_bad_configuration_errors(experiments_yaml):
    with pytest.raises(ValueError, match="exp_z"):
        _module(experiments_yaml, val_experiments=["exp_z"]).setup("fit")
    with pytest.raises(ValueError, match="none to train"):
        _module(experiments_yaml, val_experiments=["exp_a", "exp_b", "exp_c"]).setup("fit")
    with pytest.raises(ValueError, match="channel_dropout_channels"):
        _module(experiments_yaml, channel_dropout_channels=[4]).setup("fit")
    huge = _module(experiments_yaml, batch_size=100_000)
    huge.setup("fit")
    with pytest.raises(ValueError, match="batch_size=100000"):
        huge.train_dataloader()
    with pytest.raises(ValueError, match="final_yx_patch_size"):
        _module(experiments_yaml, final_yx_patch_size=(64, 64))


def test_fit_with_contrastive_module(experiments_yaml, tmp_path):
    from lightning.pytorch import Trainer
    from pytorch_metric_learning.losses import NTXentLoss

    from dynaclr.engine import ContrastiveModule
    from dynaclr.tiny_encoder import TinyEncoder

    dm = _module(experiments_yaml, leaky=0.25)
    model = ContrastiveModule(
        encoder=TinyEncoder(in_channels=2, in_stack_depth=1, width=4),
        loss_function=NTXentLoss(temperature=0.5),
        log_batches_per_epoch=0,
    )
    trainer = Trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        use_distributed_sampler=False,
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.state.finished
    assert np.isfinite(trainer.callback_metrics["loss/train_epoch"].item())
    assert "loss/val" in trainer.callback_metrics
    # Lightning set the sampler's epoch (0, then 1) and, as in 0.1.0, each pass advances it
    # once more: the last epoch drew with epoch 1 and left 2 for the next pass
    assert trainer.train_dataloader.batch_sampler.epoch == 2


def _dynaclr_fit(cwd: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    exe = shutil.which("dynaclr") or str(Path(sys.executable).parent / "dynaclr")
    command = [
        exe,
        "fit",
        "-c",
        "multi_experiment_fit.yml",
        "--data.init_args.num_workers",
        "0",
        "--data.init_args.batch_size",
        "8",
        "--trainer.accelerator",
        "cpu",
        *extra,
    ]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_example_config_fast_dev_run_cli(experiments_yaml):
    """INTG-01: the example config, as written, through `dynaclr fit` (NTXentHCL)."""
    from dynaclr.experiment import ExperimentRegistry

    registry = ExperimentRegistry.from_yaml(experiments_yaml.parent / "experiments.yml")
    assert registry.active_channels == ["Phase3D", "GFP"]
    config = yaml.safe_load((CONFIGS / "multi_experiment_fit.yml").read_text())
    assert config["model"]["init_args"]["loss_function"]["class_path"].endswith("NTXentHCL")
    data = config["data"]["init_args"]
    assert data["experiment_aware"] and data["condition_balanced"]
    assert data["temporal_enrichment"] and data["leaky"] > 0 and data["channel_dropout_prob"] > 0
    proc = _dynaclr_fit(
        experiments_yaml.parent.parent, "--trainer.fast_dev_run", "true", "--trainer.devices", "1"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "NTXentHCL" in proc.stdout
    assert "max_steps=1` reached" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_example_config_ddp_two_cpu_processes(experiments_yaml):
    """INTG-01: two gloo DDP processes, each with its own shard of every batch plan."""
    proc = _dynaclr_fit(
        experiments_yaml.parent.parent,
        "--trainer.fast_dev_run",
        "2",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "MEMBER: 2/2" in out
    assert "max_steps=2` reached" in out
