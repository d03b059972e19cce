"""``dynaclr check``: the example config passes on the demo layout; mistakes are all listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from dynaclr.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "configs"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """demo_output/plate.zarr + tracks laid out as `dynaclr demo` writes them."""
    from dynaclr.demo import DemoConfig
    from viscy_data.synthetic import write_synthetic_plate

    root = tmp_path_factory.mktemp("check")
    config = DemoConfig()
    write_synthetic_plate(
        root / "demo_output" / "plate.zarr",
        shape=(3, 2, config.z_slices, 64, 64),
        channel_names=("Phase3D", "GFP"),
        wells=config.wells,
        fovs_per_well=config.fovs_per_well,
        tracks_path=root / "demo_output" / "tracks",
        cells_per_fov=3,
        seed=1,
    )
    return root


def test_example_fit_config_passes(demo_dir, monkeypatch, capsys):
    monkeypatch.chdir(demo_dir)
    rc = main(["check", "-c", str(EXAMPLES / "fit.yml"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report["problems"]
    assert "TripletDataModule.setup('fit')" in report["checked"]


def test_three_independent_mistakes_all_reported(demo_dir, monkeypatch, capsys):
    monkeypatch.chdir(demo_dir)
    tracks = demo_dir / "bad_tracks"
    if not tracks.exists():
        shutil.copytree(demo_dir / "demo_output" / "tracks", tracks)
        csv = tracks / "A" / "2" / "1" / "tracks.csv"
        lines = csv.read_text().splitlines()
        fields = lines[3].split(",")
        fields[1] = "abc"  # column t
        lines[3] = ",".join(fields)
        csv.write_text("\n".join(lines) + "\n")
    config = yaml.safe_load((EXAMPLES / "fit.yml").read_text())
    args = config["data"]["init_args"]
    args["source_channel"] = ["Phase3D", "RFP"]
    args["z_range"] = [0, 5]
    args["tracks_path"] = "bad_tracks"
    config["model"]["init_args"]["encoder"]["init_args"]["in_stack_depth"] = 5
    path = demo_dir / "bad.yml"
    path.write_text(yaml.safe_dump(config))
    rc = main(["check", "-c", str(path)])
    out = capsys.readouterr().out
    assert rc == 1
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 3, out
    assert "unknown channel" in errors[0] and "channel='RFP'" in errors[0]
    assert "z_range outside the stack" in errors[1] and "z_range=[0, 5]" in errors[1]
    assert "FOV A/2/1" in errors[2] and "line(s) 4 (t='abc')" in errors[2]
    assert out.splitlines()[-1].startswith("check: 3 error(s)")


def test_registry_problems(tmp_path, demo_dir, capsys):
    registry = {
        "experiments": [
            {
                "name": "a",
                "data_path": str(demo_dir / "demo_output" / "plate.zarr"),
                "tracks_path": str(demo_dir / "demo_output" / "tracks"),
                "channel_names": ["Phase3D", "mCherry"],
                "condition_wells": {"mock": ["A/1"], "infected": ["C/9"]},
                "interval_minutes": 30,
            }
        ]
    }
    (tmp_path / "experiments.yml").write_text(yaml.safe_dump(registry))
    config = yaml.safe_load((EXAMPLES / "multi_experiment_fit.yml").read_text())
    config["data"]["init_args"]["experiments_yaml"] = str(tmp_path / "experiments.yml")
    config["data"]["init_args"]["val_experiments"] = ["nope"]
    path = tmp_path / "multi.yml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check", "-c", str(path), "--json"]) == 1
    problems = {p["what"]: p["value"] for p in json.loads(capsys.readouterr().out)["problems"]}
    assert problems["unknown validation experiment"] == "val_experiments=['nope']"
    assert problems["condition well not in the plate"] == "wells=['C/9']"
    assert problems["unknown channel"] == "channel='mCherry'"
