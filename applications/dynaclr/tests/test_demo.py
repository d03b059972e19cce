"""``dynaclr demo``: its configs, and a seeded end-to-end run that shows training helps."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import yaml

from dynaclr.cli import main as dynaclr
from dynaclr.demo import DemoConfig, _prepare_out, _split_fovs, write_configs


def test_split_fovs_keeps_every_well_on_both_sides():
    fovs = [f"{w}/{i}" for w in ("A/1", "A/2", "B/1") for i in range(4)]
    train, held_out = _split_fovs(fovs, held_out_per_well=2)
    assert set(train).isdisjoint(held_out)
    assert len(train) == len(held_out) == 6
    for well in ("A/1", "A/2", "B/1"):
        assert any(f.startswith(well) for f in train)
        assert any(f.startswith(well) for f in held_out)


def test_prepare_out_never_clobbers_user_files(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        _prepare_out(user, overwrite=True)
    assert (user / "notes.txt").read_text() == "keep me"
    demo = tmp_path / "demo"
    _prepare_out(demo, overwrite=False)
    (demo / "artifact").write_text("x")
    with pytest.raises(FileExistsError, match="--overwrite"):
        _prepare_out(demo, overwrite=False)
    _prepare_out(demo, overwrite=True)
    assert not (demo / "artifact").exists()


def test_configs_are_the_products_own(tmp_path):
    cells = pd.DataFrame(
        {"fov_name": ["A/1/0", "A/1/1", "A/1/1", "B/1/1"], "track_id": [1, 1, 2, 3]}
    )
    fit_yml, predict_yml = write_configs(
        DemoConfig(), tmp_path, ["A/1/0"], ["A/1/1", "B/1/1"], cells
    )
    fit = yaml.safe_load(fit_yml.read_text())
    predict = yaml.safe_load(predict_yml.read_text())
    for config in (fit, predict):
        assert config["data"]["class_path"] == "viscy_data.triplet.TripletDataModule"
        assert config["model"]["class_path"] == "dynaclr.engine.ContrastiveModule"
        normalization = config["data"]["init_args"]["normalizations"][0]
        assert normalization["class_path"] == "viscy_transforms.NormalizeSampled"
    assert fit["data"]["init_args"]["fit_exclude_fovs"] == ["A/1/1", "B/1/1"]
    assert len(fit["data"]["init_args"]["augmentations"]) >= 3
    assert "augmentations" not in predict["data"]["init_args"]
    assert predict["data"]["init_args"]["include_fov_names"] == ["A/1/1", "A/1/1", "B/1/1"]
    assert predict["data"]["init_args"]["include_track_ids"] == [1, 2, 3]
    writer = predict["trainer"]["callbacks"][0]["class_path"]
    assert writer == "viscy_utils.callbacks.embedding_writer.EmbeddingWriter"


# The demo's own configuration, seeded (about 2 CPU-minutes). Smaller plates were tried and
# are not reliable: with 3-4 FOVs per well, 6-10 cells and 6-12 epochs the gap between
# trained and untrained probes ranged from -0.09 to 0.16 across seeds 0 and 1. This one gives
# 0.729 -> 0.924 (seed 0) and 0.694 -> 0.852 (seed 1).
SMALL = replace(DemoConfig(), seed=0)


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    from dynaclr.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "demo"
    return out, run_demo(out, SMALL, progress=False)


def test_training_beats_the_untrained_probe_by_a_margin(small_demo):
    _, result = small_demo
    trained, untrained = result.metrics["trained"], result.metrics["untrained"]
    assert trained["probe_accuracy"] - untrained["probe_accuracy"] >= 0.1, result.table()


def test_training_makes_embeddings_smoother(small_demo):
    out, result = small_demo
    trained, untrained = result.metrics["trained"], result.metrics["untrained"]
    assert trained["temporal_smoothness"] < untrained["temporal_smoothness"] - 0.05
    saved = json.loads((out / "results.json").read_text())
    for name in ("trained", "untrained"):
        assert set(saved["metrics"][name]) >= {"probe_accuracy", "temporal_smoothness"}
    a = anndata.read_zarr(out / "embeddings_trained.zarr")
    b = anndata.read_zarr(out / "embeddings_untrained.zarr")
    assert a.n_obs == b.n_obs > 0
    assert not np.allclose(np.asarray(a.X), np.asarray(b.X))
    n, k = SMALL.fovs_per_well, SMALL.held_out_fovs_per_well
    held_out = {f"{r}/{c}/{i}" for r, c in SMALL.wells for i in range(n - k, n)}
    assert set(a.obs["fov_name"].astype(str).str.strip("/")) == held_out
    assert a.uns["provenance"]["checkpoint"].endswith("last.ckpt")
    assert b.uns["provenance"]["checkpoint"] == ""
    assert "TripletDataModule" in a.uns["provenance"]["config"]


def test_demo_writes_report_figures_and_a_runnable_fit_config(small_demo, monkeypatch):
    out, result = small_demo
    report = (out / "evaluation" / "report.md").read_text()
    assert "| trained |" in report and "| untrained |" in report
    assert (out / "evaluation" / "figures" / "smoothness.png").exists()
    assert (out / "figures" / "gallery_trained.png").exists()
    assert Path(result.files["checkpoint"]).exists()
    monkeypatch.chdir(out)
    assert (
        dynaclr(
            [
                "fit",
                "-c",
                str(out / "fit.yml"),
                "--trainer.fast_dev_run=true",
                "--trainer.enable_progress_bar=false",
            ]
        )
        == 0
    )
