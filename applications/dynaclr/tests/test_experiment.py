"""ExperimentConfig / ExperimentRegistry: channel resolution, YAML, validation errors."""

from __future__ import annotations

import pytest
import yaml

from dynaclr.experiment import ExperimentConfig, ExperimentRegistry


def _exp(name, channels, tmp_path=None, **kw):
    base = dict(
        name=name,
        data_path=str(tmp_path / f"{name}.zarr") if tmp_path else f"{name}.zarr",
        tracks_path=str(tmp_path / f"{name}_tracks") if tmp_path else f"{name}_tracks",
        channel_names=channels,
        condition_wells={"uninfected": ["A/1"], "infected": ["B/1"]},
        interval_minutes=30,
    )
    base.update(kw)
    return ExperimentConfig(**base)


def test_shared_all_and_explicit_channels():
    a = _exp("a", ["Phase3D", "GFP"])
    b = _exp("b", ["Phase3D", "mCherry", "GFP"])
    shared = ExperimentRegistry([a, b], "shared", check_paths=False)
    assert shared.active_channels == ["Phase3D", "GFP"]
    assert shared.channel_maps == {"a": {"Phase3D": 0, "GFP": 1}, "b": {"Phase3D": 0, "GFP": 2}}
    every = ExperimentRegistry([a, b], "all", check_paths=False)
    assert every.active_channels == ["Phase3D", "GFP", "mCherry"]
    assert every.source_indices("a") == [0, 1, -1]  # mCherry missing in a: zeros
    assert every.source_indices("b") == [0, 2, 1]
    explicit = ExperimentRegistry([a, b], ["GFP"], check_paths=False)
    assert explicit.source_indices("b") == [2]
    with pytest.raises(ValueError, match=r"mCherry.*'a'"):
        ExperimentRegistry([a, b], ["mCherry"], check_paths=False)
    with pytest.raises(ValueError, match="share no channel"):
        ExperimentRegistry([a, _exp("c", ["BF"])], "shared", check_paths=False)
    sub = every.subset(["a"])
    assert sub.names == ["a"]
    assert sub.active_channels == every.active_channels


def test_fluorescence_channel_and_conditions():
    a = _exp("a", ["Phase3D", "GFP"])
    assert a.fluorescence_channel == "GFP"
    assert a.well_conditions == {"A/1": "uninfected", "B/1": "infected"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"channel_names": ["P", "P"]}, "duplicate channel"),
        ({"channel_names": []}, "channel_names is empty"),
        ({"interval_minutes": 0}, "interval_minutes"),
        ({"condition_wells": {"x": ["A/1"], "y": ["A/1"]}}, "both"),
        ({"condition_wells": {"x": ["A1"]}}, "'A/1'"),
        ({"fluorescence_channel": "RFP"}, "fluorescence_channel"),
    ],
)
def test_invalid_experiment(change, message):
    with pytest.raises(ValueError, match=message):
        ExperimentRegistry([_exp("a", ["Phase3D", "GFP"], **change)], check_paths=False)


def test_duplicate_names_and_paths(tmp_path):
    a = _exp("a", ["Phase3D"])
    with pytest.raises(ValueError, match="duplicate experiment names"):
        ExperimentRegistry([a, _exp("a", ["Phase3D"])], check_paths=False)
    with pytest.raises(ValueError, match=r"'a'.*data_path"):
        ExperimentRegistry([_exp("a", ["Phase3D"], tmp_path)])


def test_from_yaml_resolves_relative_paths(tmp_path):
    (tmp_path / "a.zarr").mkdir()
    (tmp_path / "a_tracks").mkdir()
    config = {
        "training_channels": "all",
        "experiments": [
            {
                "name": "a",
                "data_path": "a.zarr",
                "tracks_path": "a_tracks",
                "channel_names": ["Phase3D", "GFP"],
                "condition_wells": {"uninfected": ["A/1"]},
                "interval_minutes": 15,
                "start_hpi": 2.5,
                "moi": 1.0,
            }
        ],
    }
    path = tmp_path / "experiments.yml"
    path.write_text(yaml.safe_dump(config))
    reg = ExperimentRegistry.from_yaml(path)
    assert reg["a"].data_path == str(tmp_path / "a.zarr")
    assert reg["a"].start_hpi == 2.5
    assert reg.training_channels == "all"
    config["experiments"][0]["colour"] = "red"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"experiments.yml.*unknown keys \['colour'\]"):
        ExperimentRegistry.from_yaml(path)
    del config["experiments"][0]["colour"], config["experiments"][0]["interval_minutes"]
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="missing keys"):
        ExperimentRegistry.from_yaml(path)
