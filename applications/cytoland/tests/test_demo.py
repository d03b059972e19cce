"""``cytoland demo`` (quick sizes): the product's path end to end, scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from iohub.ngff import open_ome_zarr

from cytoland.demo import TARGETS, main


def test_demo_trains_a_model_that_beats_untrained_and_baseline(demo_run):
    _, result = demo_run
    metrics = result.metrics
    for target in TARGETS:
        trained = metrics["trained"][target]["pearson"]
        assert trained > metrics["untrained"][target]["pearson"] + 0.2, (target, metrics)
        assert trained > metrics["baseline"][target]["pearson"] + 0.05, (target, metrics)
        assert trained > 0.6, (target, metrics)


def test_demo_writes_its_files(demo_run):
    root, result = demo_run
    out = root / "cytoland_demo"
    payload = json.loads((out / "results.json").read_text())
    assert set(payload["metrics"]) == {"trained", "untrained", "baseline"}
    assert set(payload["metrics"]["trained"]) == set(TARGETS)
    assert set(payload["metrics"]["trained"]["Nuclei"]) == {"pearson", "ssim"}
    assert payload["wall_time_s"] > 0
    for name in ("fit.yml", "predict.yml", "predictions.png"):
        assert (out / name).stat().st_size > 0
    assert Path(result.files["checkpoint"]).is_file()
    with (
        open_ome_zarr(out / "predictions.zarr", mode="r") as plate,
        open_ome_zarr(out / "plate.zarr", mode="r") as source,
    ):
        assert plate.channel_names == [f"{t} prediction" for t in TARGETS]
        names = [name for name, _ in plate.positions()]
        assert names == [name for name, _ in source.positions()]
        held_out = payload["held_out_fovs"]
        image = plate[held_out[0]]["0"]
        assert image.shape[0] == source[held_out[0]]["0"].shape[0]
        assert image.shape[2:] == source[held_out[0]]["0"].shape[2:]
        assert np.abs(image[:]).max() > 0  # predicted FOVs are filled


def test_demo_refuses_a_directory_it_did_not_write(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not written by"):
        main(["--out", str(tmp_path), "--quick"])
    assert (tmp_path / "mine.txt").read_text() == "user data"
