"""The example configs and SLURM scripts (TRAIN-01/02, INFER-02).

The end-to-end test runs ``dynaclr fit`` (fast_dev_run) and ``dynaclr predict`` from
``examples/configs`` as written, in a folder holding a tiny plate with the demo's layout.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import anndata
import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIGS = sorted((EXAMPLES / "configs").glob("*.yml"))
SLURM = sorted((EXAMPLES / "slurm").glob("*.sh"))


def _class_paths(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "class_path":
                found.append(value)
            else:
                found += _class_paths(value)
    elif isinstance(node, list):
        for value in node:
            found += _class_paths(value)
    return found


def test_examples_exist():
    assert {p.name for p in CONFIGS} >= {"fit.yml", "predict.yml"}
    assert {p.name for p in SLURM} >= {"fit_slurm.sh", "predict_slurm.sh"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_class_path_imports(config):
    paths = _class_paths(yaml.safe_load(config.read_text()))
    assert paths, f"no class_path in {config}"
    for path in paths:
        module_name, _, name = path.rpartition(".")
        module = importlib.import_module(module_name)
        assert hasattr(module, name), f"{config.name}: {path} does not exist"


@pytest.mark.parametrize("script", SLURM, ids=lambda p: p.name)
def test_slurm_script(script):
    bash = shutil.which("bash")
    assert bash is not None
    subprocess.run([bash, "-n", str(script)], check=True)
    text = script.read_text()
    assert "srun dynaclr" in text
    assert "#SBATCH --requeue" in text
    tasks = int(re.search(r"#SBATCH --ntasks-per-node=(\d+)", text).group(1))
    gpus = int(re.search(r"#SBATCH --gres=gpu:(\d+)", text).group(1))
    assert tasks == gpus
    assert "--trainer.devices" in text
    assert "SLURM_NTASKS_PER_NODE" in text  # devices follow the task count
    if script.name.startswith("fit"):
        assert "--trainer.strategy ddp" in text
        assert "last.ckpt" in text
        assert "--ckpt_path" in text


@pytest.fixture(scope="module")
def demo_layout_dir(tmp_path_factory):
    """A folder with demo_output/plate.zarr and tracks, laid out like `dynaclr demo`'s."""
    from dynaclr.demo import DemoConfig
    from viscy_data.synthetic import write_synthetic_plate

    root = tmp_path_factory.mktemp("configs")
    config = DemoConfig()
    plate = write_synthetic_plate(
        root / "demo_output" / "plate.zarr",
        shape=(3, 2, config.z_slices, 64, 64),
        channel_names=("Phase3D", "GFP"),
        wells=config.wells,
        fovs_per_well=config.fovs_per_well,
        tracks_path=root / "demo_output" / "tracks",
        cells_per_fov=3,
        infection_onset=1,
        seed=1,
    )
    return root, plate


def test_fit_fast_dev_run_and_predict_from_examples(demo_layout_dir):
    root, plate = demo_layout_dir
    shutil.copy(EXAMPLES / "configs" / "fit.yml", root / "fit.yml")
    shutil.copy(EXAMPLES / "configs" / "predict.yml", root / "predict.yml")
    cpu = ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
    script = (
        "import sys\n"
        "from dynaclr.cli import main\n"
        f"cpu = {cpu!r}\n"
        "rc = main(['fit', '-c', 'fit.yml', '--trainer.fast_dev_run', 'true',"
        " '--data.init_args.num_workers', '0', '--data.init_args.batch_size', '4', *cpu])\n"
        "assert rc == 0, rc\n"
        "rc = main(['predict', '-c', 'predict.yml', '--ckpt_path', 'null',"
        " '--data.init_args.num_workers', '0', *cpu])\n"
        "assert rc == 0, rc\n"
        "print('BOTH-OK')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "BOTH-OK" in proc.stdout
    embeddings = root / "demo_output" / "fit" / "embeddings.zarr"
    assert embeddings.exists()
    adata = anndata.read_zarr(embeddings)
    assert adata.n_obs == len(plate.cells)
    assert adata.n_vars == 768
    assert {"fov_name", "track_id", "t"} <= set(adata.obs.columns)


def test_inspect_batches_writes_png(demo_layout_dir, monkeypatch):
    from matplotlib import pyplot as plt

    from dynaclr.cli import main

    root, _ = demo_layout_dir
    monkeypatch.chdir(root)
    out = root / "batches.png"
    rc = main(
        [
            "inspect-batches",
            "-c",
            str(EXAMPLES / "configs" / "fit.yml"),
            "-o",
            str(out),
            "--samples-per-batch",
            "3",
        ]
    )
    assert rc == 0
    image = plt.imread(out)
    # 3 rows of 32 px crops (+2 px gaps); 2 views (no negatives with NT-Xent) x 2 channels
    assert image.shape[0] == 3 * (32 + 2)
    assert image.shape[1] == 4 * (32 + 2)
