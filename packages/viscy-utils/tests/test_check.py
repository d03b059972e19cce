"""``viscy check``: every problem of a config at once, with its value; damaged chunks found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from viscy_utils.check import check_config
from viscy_utils.cli import main

from .conftest import SHAPE, write_plate


@pytest.fixture(scope="module")
def norm_plate(tmp_path_factory) -> Path:
    """A plate with normalization metadata (zarr v3), for this module only."""
    return write_plate(tmp_path_factory.mktemp("check") / "plate.zarr", normalization=True)


def _hcs_config(plate: Path, **data_args) -> dict:
    args = {
        "data_path": str(plate),
        "source_channel": "Phase3D",
        "target_channel": ["GFP"],
        "z_window_size": 2,
        "yx_patch_size": [16, 16],
        "batch_size": 2,
        "num_workers": 0,
        "normalizations": [
            {
                "class_path": "viscy_transforms.NormalizeSampled",
                "init_args": {
                    "keys": ["Phase3D"],
                    "level": "fov_statistics",
                    "subtrahend": "mean",
                    "divisor": "std",
                },
            }
        ],
    }
    args.update(data_args)
    return {
        "trainer": {"accelerator": "cpu", "devices": 1},
        "data": {"class_path": "viscy_data.hcs.HCSDataModule", "init_args": args},
    }


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_good_hcs_config_passes_with_setup(norm_plate, tmp_path, capsys):
    rc = main(["check", "-c", str(_write(tmp_path, _hcs_config(norm_plate))), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report
    assert report["ok"] and report["errors"] == 0
    assert "HCSDataModule.setup('fit')" in report["checked"]


def test_all_mistakes_reported_at_once_with_values(plate_path, tmp_path, capsys):
    # plate_path has no normalization metadata: four independent mistakes
    config = _hcs_config(
        plate_path, target_channel=["RFP"], z_window_size=5, yx_patch_size=[64, 16]
    )
    rc = main(["check", "-c", str(_write(tmp_path, config))])
    out = capsys.readouterr().out
    assert rc == 1
    lines = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 4, out
    assert any("unknown channel" in line and "'RFP'" in line for line in lines)
    assert any("z_window_size=5" in line and f"at most {SHAPE[2]}" in line for line in lines)
    assert any("yx_patch_size=[64, 16]" in line for line in lines)
    assert any("normalization metadata missing" in line and "viscy preprocess" in line
               for line in lines)  # fmt: skip
    assert "4 error(s)" in out and "setup skipped" in out


@pytest.mark.parametrize(
    ("data_path", "what"),
    [("missing.zarr", "plate not found"), ("not_a_plate", "not an OME-Zarr plate")],
)
def test_bad_data_path(tmp_path, data_path, what):
    (tmp_path / "not_a_plate").mkdir()
    report = check_config(_hcs_config(tmp_path / data_path), setup=False)
    assert [p.what for p in report.errors] == [what]
    assert data_path in report.errors[0].value


def test_model_channels_and_devices(norm_plate):
    config = _hcs_config(norm_plate)
    config["model"] = {
        "class_path": "x.Y",
        "init_args": {"model_config": {"in_channels": 3, "in_stack_depth": 5}},
    }
    config["trainer"] = {"accelerator": "cpu", "devices": 4096, "strategy": "ddp"}
    report = check_config(config, setup=False)
    values = {p.what: p.value for p in report.problems}
    assert values["model input channels do not match the data"] == "in_channels=3"
    assert values["model stack depth does not match the data"] == "in_stack_depth=5"
    assert [p.what for p in report.warnings] == ["more devices than this machine has"]
    assert report.warnings[0].value == "devices=4096"


def test_setup_error_is_reported_not_raised(norm_plate):
    config = _hcs_config(norm_plate, split_ratio=1.5)
    config["data"]["init_args"]["exclude_fov_names"] = ["A/1/0", "A/1/1", "B/1/0", "B/1/1"]
    report = check_config(config)
    assert not report.ok
    assert any("cannot be built" in p.what or "setup" in p.what for p in report.errors)


def test_unknown_class_is_reported(norm_plate):
    config = _hcs_config(norm_plate)
    config["data"]["class_path"] = "viscy_data.hcs.NoSuchDataModule"
    report = check_config(config)
    assert [p.what for p in report.errors] == ["data cannot be built"]
    assert "NoSuchDataModule" in report.errors[0].where


def _damage_one_chunk(plate: Path) -> Path:
    chunk = plate / "A" / "1" / "1" / "0" / "c" / "2" / "1" / "0" / "0" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"\x00garbage, not blosc\xff" * 4)
    return chunk


def test_read_all_finds_damaged_chunk_and_ignores_missing(tmp_path, capsys):
    plate = write_plate(tmp_path / "plate.zarr", normalization=True)
    chunk = _damage_one_chunk(plate)
    (plate / "B" / "1" / "0" / "0" / "c" / "0" / "0" / "0" / "0" / "0").unlink()  # fill value
    path = _write(tmp_path, _hcs_config(plate))
    assert main(["check", "-c", str(path), "--no-setup", "--read", "2"]) in (0, 1)
    capsys.readouterr()
    rc = main(["check", "-c", str(path), "--no-setup", "--read", "all", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert [p["what"] for p in report["problems"]] == ["damaged chunk"]
    problem = report["problems"][0]
    assert "FOV A/1/1 t=2" in problem["where"]
    assert str(chunk) in problem["value"] and "['GFP']" in problem["value"]


def test_read_argument_is_validated(norm_plate, tmp_path):
    path = _write(tmp_path, _hcs_config(norm_plate))
    assert main(["check", "-c", str(path), "--read", "0"]) == 2
    assert main(["check", "-c", str(tmp_path / "nope.yml")]) == 2


def test_check_in_usage(capsys):
    assert main(["--help"]) == 0
    assert "check" in capsys.readouterr().out
