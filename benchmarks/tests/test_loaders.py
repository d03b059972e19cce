"""Smoke test of the loader benchmarks: each runs end to end on tiny plates in seconds.

Nothing here times anything against a limit (the numbers of a tiny, loaded run mean little);
it checks that each benchmark runs its loader and its raw baseline over the same boxes and
reports finite, positive ratios, so a benchmark cannot rot unnoticed between real runs.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.loaders import BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench")


def _positive(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_entry_point_lists_every_loader_benchmark():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.loaders", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for name in ("hcs", "triplet", "multi"):
        assert name in result.stdout
    assert {"hcs", "triplet", "multi", "layout", "setup", "hcs_release"} <= set(BENCHMARKS)


def test_hcs(workdir):
    from benchmarks.loaders.hcs import hcs

    result = hcs(
        workdir, batch_size=4, workers=0, cache_mib=16, warm_epochs=1, repeats=1,
        shape=(2, 2, 5, 64, 64), z_window=5, patch_yx=(32, 32), cells_per_fov=3,
    )  # fmt: skip
    (trial,) = result["trials"]
    assert trial["samples_per_epoch"] > 0
    for state in ("cold", "warm"):
        assert _positive(trial[state]["loader_over_raw"])
        assert result[state]["trials"] == [trial[state]["loader_over_raw"]]
    assert result["machine"]["cpus"] >= 1
    json.dumps(result)


def test_triplet(workdir):
    from benchmarks.loaders.triplet import triplet

    result = triplet(
        workdir, batch_size=4, num_workers=1, cells_per_fov=4, cache_bytes=16 * 1024**2,
        shape=(3, 2, 4, 96, 96), z_range=(0, 4),
        initial_yx_patch_size=(48, 48), final_yx_patch_size=(32, 32),
    )  # fmt: skip
    assert result["config"]["train_anchors"] > 0
    assert result["loader_cold"]["boxes_per_s"] > 0
    # the raw baseline read as many boxes as the loader did (rates are rounded: compare counts)
    assert result["raw_tensorstore_cold"]["boxes"] == result["loader_cold"]["boxes"] > 0
    for key in ("ratio_loader_over_raw_cold", "ratio_loader_over_raw_warm"):
        assert _positive(result[key])
    json.dumps(result)


def test_multi(workdir):
    from benchmarks.loaders.multi import multi

    result = multi(
        workdir, batch_size=4, num_workers=1, batches=2, cells_per_fov=4,
        cache_bytes=16 * 1024**2, warm_epochs=1, shape_tzyx=(4, 4, 96, 96), z_range=(0, 4),
        yx_patch_size=(48, 48), final_yx_patch_size=(32, 32),
    )  # fmt: skip
    assert result["boxes_read"]["cold"] > 0
    assert len(result["boxes_read"]["warm"]) == 1
    assert result["boxes_read"]["warm"][0] > 0
    for key in ("loader_over_raw", "loader_over_raw_after"):
        assert _positive(result[key]["cold"])
        assert _positive(result[key]["warm"])
    json.dumps(result)


def test_layout(workdir):
    import argparse

    from benchmarks.loaders import layout

    parser = argparse.ArgumentParser()
    layout.add_arguments(parser)
    args = parser.parse_args(
        ["--workdir", str(workdir), "--batches", "1", "--rounds", "1", "--cache-mib", "1"]
        + ["--shape", "2,2,4,64,64", "--kinds", "triplet"]
    )
    result = layout.run(args)
    assert result["rechunk_s"] > 0
    assert set(result["results"]) == {"triplet"}
    for entry in result["results"].values():
        assert _positive(entry["rechunked_over_original"])
        assert _positive(entry["rechunked_over_original_full_decode"])
        assert _positive(entry["partial_over_full_decode"])
        assert entry["samples"] == entry["batch_size"]
    json.dumps(result)
