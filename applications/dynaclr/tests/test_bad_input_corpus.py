"""The bad-input corpus: each case is one mistake a user makes, and the message must name the
offending thing (file, FOV, channel, column, option) and quote its value.

Cases span configs (through ``check``), tracks CSVs, the HCS, triplet and multi-experiment
DataModules, the reader and ``viscy preprocess``. All share one tiny plate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

SHAPE = (3, 2, 4, 64, 64)  # T, C, Z, Y, X


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    from viscy_data.synthetic import write_synthetic_plate

    root = tmp_path_factory.mktemp("corpus")
    return write_synthetic_plate(
        root / "plate.zarr",
        shape=SHAPE,
        fovs_per_well=2,
        tracks_path=root / "tracks",
        cells_per_fov=3,
        seed=5,
    )


# ---------------------------------------------------------------- configs through `check`


def _triplet_config(plate, **data) -> dict:
    args = {
        "data_path": str(plate.path),
        "tracks_path": str(plate.tracks_path),
        "source_channel": ["Phase3D", "GFP"],
        "z_range": [0, 4],
        "initial_yx_patch_size": [32, 32],
        "final_yx_patch_size": [24, 24],
        "normalizations": [
            {
                "class_path": "viscy_transforms.NormalizeSampled",
                "init_args": {"keys": ["GFP"], "level": "fov_statistics"},
            }
        ],
    }
    args.update(data)
    return {
        "trainer": {"accelerator": "cpu", "devices": 1},
        "model": {
            "class_path": "dynaclr.engine.ContrastiveModule",
            "init_args": {"encoder": {"init_args": {"in_channels": 2, "in_stack_depth": 4}}},
        },
        "data": {"class_path": "viscy_data.triplet.TripletDataModule", "init_args": args},
    }


def _check_lines(config: dict, tmp_path: Path, severity: str = "error") -> str:
    from dynaclr.check import check_experiments
    from viscy_utils.check import check_config

    report = check_config(config, setup=False, extra_checks=[check_experiments])
    problems = report.errors if severity == "error" else report.warnings
    assert problems, "no problem reported"
    return "\n".join(p.line() for p in problems)


def _config_case(severity: str = "error", model: dict | None = None, trainer=None, **data):
    def make(plate, tmp_path):
        config = _triplet_config(plate, **data)
        if model:
            config["model"]["init_args"]["encoder"]["init_args"].update(model)
        if trainer:
            config["trainer"].update(trainer)
        return _check_lines(config, tmp_path, severity)

    return make


def _registry_case(edit: Callable[[dict, dict], None]):
    """A multi-experiment config whose registry (or data section) ``edit`` breaks."""

    def make(plate, tmp_path):
        experiment = {
            "name": "exp_a",
            "data_path": str(plate.path),
            "tracks_path": str(plate.tracks_path),
            "channel_names": ["Phase3D", "GFP"],
            "condition_wells": {"uninfected": ["A/1"], "infected": ["B/1"]},
            "interval_minutes": 30,
        }
        data = {
            "experiments_yaml": str(tmp_path / "experiments.yml"),
            "val_experiments": [],
            "z_range": [0, 4],
            "yx_patch_size": [32, 32],
            "final_yx_patch_size": [24, 24],
        }
        edit(experiment, data)
        (tmp_path / "experiments.yml").write_text(yaml.safe_dump({"experiments": [experiment]}))
        config = {
            "data": {"class_path": "dynaclr.datamodule.MultiExperimentDataModule",
                     "init_args": data},
        }  # fmt: skip
        return _check_lines(config, tmp_path)

    return make


# ---------------------------------------------------------------- tracks CSVs


def _tracks_case(text: str):
    def make(plate, tmp_path):
        from viscy_data import read_tracks_csv

        path = tmp_path / "tracks.csv"
        path.write_text(text)
        with pytest.raises(ValueError) as err:
            read_tracks_csv(path, "A/1/0", SHAPE)
        return str(err.value)

    return make


# ---------------------------------------------------------------- DataModules and tools


def _raises(build: Callable, error: type[BaseException] = Exception):
    def make(plate, tmp_path):
        with pytest.raises(error) as err:
            build(plate, tmp_path)
        return str(err.value)

    return make


def _hcs_setup(**kwargs):
    def build(plate, tmp_path):
        from viscy_data import HCSDataModule

        args = {
            "data_path": str(plate.path),
            "source_channel": "Phase3D",
            "target_channel": "GFP",
            "z_window_size": 2,
            "yx_patch_size": (32, 32),
            "num_workers": 0,
        }
        args.update(kwargs)
        HCSDataModule(**args).setup("fit")

    return build


def _triplet_setup(break_tracks: Callable | None = None, **kwargs):
    def build(plate, tmp_path):
        import shutil

        from viscy_data import TripletDataModule

        tracks = tmp_path / "tracks"
        shutil.copytree(plate.tracks_path, tracks)
        if break_tracks is not None:
            csv = tracks / "A" / "1" / "1" / "tracks.csv"
            csv.write_text(break_tracks(csv.read_text()))
        args = {
            "data_path": str(plate.path),
            "tracks_path": str(tracks),
            "source_channel": ["Phase3D", "GFP"],
            "z_range": (0, 4),
            "initial_yx_patch_size": (32, 32),
            "final_yx_patch_size": (32, 32),
            "split_ratio": 0.5,
            "num_workers": 0,
        }
        args.update(kwargs)
        TripletDataModule(**args).setup("fit")

    return build


def _set_cell(row: int, column: int, value: str):
    def edit(text: str) -> str:
        lines = text.splitlines()
        fields = lines[row].split(",")
        fields[column] = value
        lines[row] = ",".join(fields)
        return "\n".join(lines) + "\n"

    return edit


def _multi_setup(edit: Callable[[dict], None]):
    def build(plate, tmp_path):
        from dynaclr.datamodule import MultiExperimentDataModule

        experiment = {
            "name": "exp_a",
            "data_path": str(plate.path),
            "tracks_path": str(plate.tracks_path),
            "channel_names": ["Phase3D", "GFP"],
            "condition_wells": {"uninfected": ["A/1"], "infected": ["B/1"]},
            "interval_minutes": 30,
        }
        experiments = [experiment]
        edit(experiments)
        path = tmp_path / "experiments.yml"
        path.write_text(yaml.safe_dump({"experiments": experiments}))
        MultiExperimentDataModule(
            experiments_yaml=str(path),
            yx_patch_size=(32, 32),
            final_yx_patch_size=(24, 24),
            num_workers=0,
        ).setup("fit")

    return build


def _reader_box(**box):
    def build(plate, tmp_path):
        from viscy_data import PatchBox, PatchReader

        spec = {"position": "A/1/0", "t": 0, "channels": (0,), "z": (0, 4), "y": (0, 32)}
        spec.update({"x": (0, 32)}, **box)
        PatchReader(plate.path).read_patch(PatchBox(**spec))

    return build


def _damaged_read(plate, tmp_path):
    import shutil

    from viscy_data import PatchBox, PatchReader

    copy = tmp_path / "copy.zarr"
    shutil.copytree(plate.path, copy)
    (copy / "B" / "1" / "1" / "0" / "c" / "2" / "1" / "0" / "0" / "0").write_bytes(b"junk")
    PatchReader(copy).read_patch(PatchBox("B/1/1", 2, (1,), (0, 4), (0, 16), (0, 16)))


def _drop(key):
    return lambda experiments: experiments[0].pop(key)


def _set(key, value):
    return lambda experiments: experiments[0].__setitem__(key, value)


CASES: dict[str, tuple[Callable, list[str]]] = {
    # configs (check): one line each, with the value
    "config-unknown-source-channel": (
        _config_case(source_channel=["Phase3D", "RFP"]), ["unknown channel", "channel='RFP'"]),
    "config-z-range-outside": (
        _config_case(z_range=[2, 9]), ["z_range outside the stack", "z_range=[2, 9]"]),
    "config-patch-too-large": (
        _config_case(initial_yx_patch_size=[96, 32]), ["initial_yx_patch_size=[96, 32]",
                                                       "at most [64, 64]"]),
    "config-final-larger-than-initial": (
        _config_case(final_yx_patch_size=[48, 48]), ["final_yx_patch_size=[48, 48]"]),
    "config-bad-normalization-level": (
        _config_case(normalizations=[{"class_path": "viscy_transforms.NormalizeSampled",
                                      "init_args": {"keys": ["GFP"], "level": "fov_stats"}}]),
        ["unknown normalization level", "level='fov_stats'"]),
    "config-missing-data-path": (
        _config_case(data_path="/nonexistent/plate.zarr"),
        ["plate not found", "data_path='/nonexistent/plate.zarr'"]),
    "config-missing-tracks-path": (
        _config_case(tracks_path="/nonexistent/tracks"),
        ["tracks folder not found", "tracks_path='/nonexistent/tracks'"]),
    "config-model-in-channels": (
        _config_case(model={"in_channels": 3}), ["in_channels=3", "set it to 2"]),
    "config-model-stack-depth": (
        _config_case(model={"in_stack_depth": 5}), ["in_stack_depth=5", "set it to 4"]),
    "config-too-many-devices": (
        _config_case("warning", trainer={"devices": 100000}), ["devices=100000"]),
    "config-ddp-one-device": (
        _config_case("warning", trainer={"strategy": "ddp"}), ["strategy='ddp'"]),
    # experiments registries (check)
    "registry-unknown-val-experiment": (
        _registry_case(lambda e, d: d.__setitem__("val_experiments", ["exp_z"])),
        ["val_experiments=['exp_z']"]),
    "registry-well-not-in-plate": (
        _registry_case(lambda e, d: e["condition_wells"].__setitem__("infected", ["C/4"])),
        ["condition well not in the plate", "wells=['C/4']"]),
    "registry-unknown-channel": (
        _registry_case(lambda e, d: e.__setitem__("channel_names", ["Phase3D", "mCherry"])),
        ["experiment 'exp_a'", "channel='mCherry'"]),
    "registry-missing-plate": (
        _registry_case(lambda e, d: e.__setitem__("data_path", "/nonexistent/x.zarr")),
        ["experiment 'exp_a'", "data_path='/nonexistent/x.zarr'"]),
    "registry-unknown-key": (
        _registry_case(lambda e, d: e.__setitem__("colour", "red")),
        ["experiments.yml", "unknown keys ['colour']"]),
    # tracks CSVs: file, column, line and value
    "tracks-string-in-t": (
        _tracks_case("track_id,t,y,x\n1,0,3,4\n1,abc,3,4\n"),
        ["tracks.csv", "line(s) 3 (t='abc')"]),
    "tracks-t-beyond-image": (
        _tracks_case("track_id,t,y,x\n1,0,3,4\n1,7,3,4\n"), ["3 timepoints", "3 (t=7)"]),
    "tracks-y-outside-image": (
        _tracks_case("track_id,t,y,x\n1,0,500.0,4\n"), ["'y' is outside", "2 (y=500.0)"]),
    "tracks-duplicate-track-t": (
        _tracks_case("track_id,t,y,x\n1,0,3,4\n1,0,5,4\n"), ["3 (track_id=1, t=0)"]),
    "tracks-fractional-id": (
        _tracks_case("track_id,t,y,x\n1.5,0,3,4\n"), ["fractional", "(track_id=1.5)"]),
    "tracks-string-id": (
        _tracks_case("track_id,t,y,x\nabc,0,3,4\n"), ["'track_id'", "(track_id='abc')"]),
    "tracks-missing-value": (
        _tracks_case("track_id,t,y,x\n1,,3,4\n"), ["'t'", "(t=<missing>)"]),
    "tracks-missing-column": (
        _tracks_case("track_id,t,y\n1,0,3\n"), ["lacks column(s) ['x']"]),
    # HCS DataModule setup
    "hcs-unknown-target-channel": (
        _raises(_hcs_setup(target_channel="RFP")), ["['RFP']", "plate.zarr"]),
    "hcs-window-deeper-than-stack": (
        _raises(_hcs_setup(z_window_size=9)), ["z_window_size=9", "FOV 'A/1/0'"]),
    "hcs-patch-larger-than-fov": (
        _raises(_hcs_setup(yx_patch_size=(128, 32))), ["yx_patch_size=(128, 32)"]),
    # triplet DataModule setup
    "triplet-string-in-t": (
        _raises(_triplet_setup(_set_cell(3, 1, "abc"))), ["A/1/1", "(t='abc')"]),
    "triplet-centroid-outside": (
        _raises(_triplet_setup(_set_cell(2, 6, "900.5"))), ["A/1/1", "(y=900.5)"]),
    "triplet-all-fovs-excluded": (
        _raises(_triplet_setup(fit_include_wells=["C/9"])), ["fit_include_wells=['C/9']"]),
    "triplet-unknown-channel": (
        _raises(_triplet_setup(source_channel=["Phase3D", "DAPI"])), ["'DAPI'"]),
    # multi-experiment DataModule setup
    "multi-missing-interval": (
        _raises(_multi_setup(_drop("interval_minutes"))), ["exp_a", "interval_minutes"]),
    "multi-bad-interval": (
        _raises(_multi_setup(_set("interval_minutes", -5))), ["exp_a", "got -5"]),
    "multi-bad-well": (
        _raises(_multi_setup(_set("condition_wells", {"mock": ["A1"]}))), ["exp_a", "'A1'"]),
    # reader
    "reader-box-outside-z": (
        _raises(_reader_box(z=(0, 6)), ValueError), ["axis Z", "[0, 6)", "A/1/0"]),
    "reader-bad-channel-index": (
        _raises(_reader_box(channels=(5,)), ValueError), ["channel 5"]),
    "reader-damaged-chunk": (
        _raises(_damaged_read, OSError),
        ["FOV 'B/1/1' t=2 channel(s) ['GFP']", "copy.zarr/B/1/1/0/c/2/1/0/0/0"]),
}  # fmt: skip

PREPROCESS_CASES = {
    "preprocess-missing-plate": (["--data_path", "/nonexistent/p.zarr"], ["/nonexistent/p.zarr"]),
    "preprocess-unknown-channel": (["--channel_names", "RFP"], ["['RFP']", "has ['Phase3D'"]),
    "preprocess-bad-grid-spacing": (["--grid_spacing", "0"], ["grid_spacing", "got 0"]),
}


def test_corpus_size():
    assert len(CASES) + len(PREPROCESS_CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_named_with_its_value(plate, tmp_path, name):
    make, expected = CASES[name]
    message = make(plate, tmp_path)
    for fragment in expected:
        assert fragment in message, f"{name}: {fragment!r} not in:\n{message}"


@pytest.mark.parametrize("name", sorted(PREPROCESS_CASES))
def test_bad_preprocess_input(plate, capsys, name):
    from viscy_utils.cli import main

    args, expected = PREPROCESS_CASES[name]
    if "--data_path" not in args:
        args = ["--data_path", str(plate.path), *args]
    assert main(["preprocess", "--no_progress", *args]) != 0
    err = capsys.readouterr().err
    for fragment in expected:
        assert re.search(re.escape(fragment), err), f"{name}: {fragment!r} not in:\n{err}"
