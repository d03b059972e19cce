"""Every example config runs as written through ``cytoland`` (one subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from iohub.ngff import open_ome_zarr

CONFIGS = Path(__file__).parents[1] / "examples" / "configs"

# Runs in the directory holding ./cytoland_demo (the configs' relative paths); one
# process, so torch and Lightning are imported once.
_SCRIPT = """
import sys
from cytoland.cli import main

configs = sys.argv[1]
# a one-batch run that still saves last.ckpt (fast_dev_run saves no checkpoint)
short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
         "--trainer.limit_val_batches", "1", "--data.init_args.num_workers", "0"]
fast = ["--trainer.fast_dev_run", "true", "--data.init_args.num_workers", "0"]
steps = [
    ["fit", "-c", f"{configs}/fit_2d.yml", *short],
    ["fit", "-c", f"{configs}/fit_3d.yml", *fast],
    ["fit", "-c", f"{configs}/fit_3d.yml", *short],
    ["fit", "-c", f"{configs}/fcmae_pretrain.yml", *short],
    ["fit", "-c", f"{configs}/fcmae_finetune.yml", *fast],
    ["fit", "-c", f"{configs}/fcmae_finetune.yml", *short],
    ["predict", "-c", f"{configs}/predict_2d.yml"],
    ["predict", "-c", f"{configs}/predict_3d.yml"],
    ["predict", "-c", f"{configs}/predict_fcmae.yml"],
    ["export", "-c", f"{configs}/fit_2d.yml", "--ckpt_path",
     "cytoland_demo/runs/fit_2d/checkpoints/last.ckpt", "--export_path", "model_2d.onnx"],
]
for argv in steps:
    print("== cytoland", " ".join(argv), flush=True)
    code = main(argv)
    if code:
        sys.exit(f"cytoland {' '.join(argv)} exited {code}")
"""


@pytest.fixture(scope="module")
def config_runs(demo_run):
    root, _ = demo_run
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(CONFIGS)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return root, proc.stdout


def test_every_config_is_exercised():
    names = {p.name for p in CONFIGS.glob("*.yml")}
    for name in names:
        assert name in _SCRIPT, f"{name} is not run by this test"


@pytest.mark.parametrize("run", ["fit_2d", "fit_3d", "fcmae_finetune"])
def test_predict_writes_named_channels_with_the_input_shape(config_runs, run):
    root, _ = config_runs
    store = root / "cytoland_demo" / "runs" / run / "predictions.zarr"
    with (
        open_ome_zarr(store, mode="r") as plate,
        open_ome_zarr(root / "cytoland_demo" / "plate.zarr", mode="r") as source,
    ):
        assert plate.channel_names == ["Nuclei prediction", "Membrane prediction"]
        t, _, z, y, x = source["A/1/3"]["0"].shape
        image = plate["A/1/3"]["0"]
        assert image.shape == (t, 2, z, y, x)
        values = image[:]
        if run == "fit_3d":  # a 5-slice window predicts its centre slice: Z 2..Z-3
            assert np.all(values[:, :, :2] == 0) and np.abs(values[:, :, 2]).max() > 0
        else:
            assert np.abs(values).max() > 0
        assert np.all(plate["A/1/0"]["0"][:] == 0)  # not predicted (not held out)


def test_export_matches_torch(config_runs):
    root, stdout = config_runs
    assert (root / "model_2d.onnx").stat().st_size > 0
    assert "matches torch" in stdout


def test_finetune_loaded_the_pretrained_encoder(config_runs):
    import torch

    root, _ = config_runs
    runs = root / "cytoland_demo" / "runs"
    pretrain = torch.load(runs / "fcmae_pretrain/checkpoints/last.ckpt", weights_only=False)
    finetune = torch.load(runs / "fcmae_finetune/checkpoints/last.ckpt", weights_only=False)
    key = next(k for k in pretrain["state_dict"] if k.startswith("model.encoder.stem"))
    before, after = pretrain["state_dict"][key], finetune["state_dict"][key]
    # one fine-tuning step moves the weights a little from the pretrained ones, not far
    assert (after - before).abs().max() < 0.05 * before.abs().max() + 1e-2
