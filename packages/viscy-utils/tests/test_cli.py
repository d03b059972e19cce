import os
import subprocess
import sys
from pathlib import Path

import yaml

from viscy_utils.cli import SUBCOMMANDS, compose_config_args, main

TESTS_DIR = Path(__file__).parent


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict", "preprocess", "export"):
        assert name in SUBCOMMANDS
        assert f"\n  {name} " in out
    assert main(["nonsense"]) == 2
    assert "unknown subcommand 'nonsense'" in capsys.readouterr().err


def test_console_script_help_without_lightning():
    code = (
        "import sys; from viscy_utils.cli import main; rc = main(['--help']); "
        "assert 'lightning' not in sys.modules and 'torch' not in sys.modules; sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "preprocess" in result.stdout


def test_compose_config_args(tmp_path):
    (tmp_path / "base.yml").write_text("trainer:\n  max_epochs: 3\n  devices: 1\n")
    (tmp_path / "fit.yml").write_text("base: base.yml\ntrainer:\n  devices: 2\n")
    (tmp_path / "plain.yml").write_text("trainer:\n  devices: 4\n")
    args = compose_config_args(["-c", str(tmp_path / "fit.yml"), f"--config={tmp_path}/plain.yml"])
    assert args[0] == "-c"
    assert yaml.safe_load(args[1]) == {"trainer": {"max_epochs": 3, "devices": 2}}
    assert args[2:] == ["--config", f"{tmp_path}/plain.yml"]


def test_fit_from_composed_yaml_in_subprocess(plate_path, tmp_path):
    """`viscy fit -c fit.yml` (with a base config) trains a fast_dev_run batch of HCSDataModule."""
    marker = tmp_path / "steps.txt"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.yml").write_text(
        yaml.safe_dump(
            {
                "seed_everything": 0,
                "trainer": {"accelerator": "cpu", "devices": 1, "fast_dev_run": True},
                "model": {
                    "class_path": "_tiny_lightning.TinyTranslator",
                    "init_args": {"lr": 0.5, "marker_path": str(marker)},
                },
            }
        )
    )
    (tmp_path / "fit.yml").write_text(
        yaml.safe_dump(
            {
                "base": ["configs/base.yml"],
                "trainer": {"default_root_dir": str(tmp_path / "logs")},
                "model": {"init_args": {"lr": 0.25}},
                "data": {
                    "class_path": "viscy_data.HCSDataModule",
                    "init_args": {
                        "data_path": str(plate_path),
                        "source_channel": "Phase3D",
                        "target_channel": ["GFP"],
                        "z_window_size": 1,
                        "split_ratio": 0.5,
                        "batch_size": 2,
                        "num_workers": 0,
                        "yx_patch_size": [16, 16],
                        "pin_memory": False,
                    },
                },
            }
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "viscy_utils.cli", "fit", "-c", str(tmp_path / "fit.yml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # one training batch ran, with lr from fit.yml overriding the base
    assert marker.read_text() == "1 0.25"
