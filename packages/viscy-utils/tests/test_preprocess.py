import json
import subprocess
import sys

import numpy as np
import pytest
from iohub.ngff import open_ome_zarr

from viscy_data import read_norm_meta
from viscy_utils.cli import main
from viscy_utils.preprocess import compute_normalization_stats, generate_normalization_metadata

from .conftest import CHANNELS, write_plate

# the keys 0.1.0's `viscy preprocess` writes
STAT_KEYS = {
    "mean", "std", "median", "iqr", "min", "max", "p1", "p5", "p95", "p99", "p95_p5", "p99_p1",
}  # fmt: skip


def _numpy_stats(values):
    v = np.asarray(values, dtype=np.float64).ravel()
    q = np.percentile(v, [1, 5, 25, 50, 75, 95, 99])
    return {
        "mean": v.mean(), "std": v.std(), "median": q[3], "iqr": q[4] - q[2], "min": v.min(),
        "max": v.max(), "p1": q[0], "p5": q[1], "p95": q[5], "p99": q[6],
        "p95_p5": q[5] - q[1], "p99_p1": q[6] - q[0],
    }  # fmt: skip


def _assert_close(got, expected):
    assert set(got) == STAT_KEYS
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=0.01, abs=1e-6), key


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_preprocess_cli_matches_numpy(tmp_path, version):
    # the 0.4 plate starts with the generator's statistics, which must be replaced
    path = write_plate(tmp_path / "plate.zarr", version=version, normalization=version == "0.4")
    spacing = 2
    args = ["preprocess", "--data_path", str(path), "--grid_spacing", str(spacing)]
    if version == "0.5":  # the console entry point, FOVs in 2 worker processes
        cmd = [sys.executable, "-m", "viscy_utils.cli", *args, "--num_workers", "2"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    else:  # in this process (iohub imports slowly: one subprocess is enough)
        assert main([*args, "--no_progress"]) == 0
    with open_ome_zarr(path, mode="r") as plate:
        pixels = {name: np.asarray(pos["0"][:]) for name, pos in plate.positions()}
        plate_meta = plate.zattrs["normalization"]
        metas = {name: read_norm_meta(pos) for name, pos in plate.positions()}
    for c, ch in enumerate(CHANNELS):
        grids = {n: p[:, c, :, ::spacing, ::spacing] for n, p in pixels.items()}
        dataset = _numpy_stats(np.concatenate([g.ravel() for g in grids.values()]))
        _assert_close(plate_meta[ch]["dataset_statistics"], dataset)
        for name, grid in grids.items():
            meta = metas[name][ch]
            _assert_close(meta["dataset_statistics"], dataset)
            _assert_close(meta["fov_statistics"], _numpy_stats(grid))
            tp = meta["timepoint_statistics"]
            assert sorted(tp) == [str(t) for t in range(grid.shape[0])]
            for t in range(grid.shape[0]):
                _assert_close(tp[str(t)], _numpy_stats(grid[t]))


def test_preprocess_rerun_and_channel_subset(plate_path, tmp_path):
    first = generate_normalization_metadata(plate_path, channel_names=["GFP"], progress=False)
    assert first.channel_names == ["GFP"]
    with open_ome_zarr(plate_path, mode="r") as plate:
        pos = next(iter(plate.positions()))[1]
        assert list(pos.zattrs["normalization"]) == ["GFP"]
        before = json.dumps(pos.zattrs["normalization"], sort_keys=True)
    # re-running adds a channel and leaves the earlier identical
    generate_normalization_metadata(plate_path, progress=False)
    with open_ome_zarr(plate_path, mode="r") as plate:
        pos = next(iter(plate.positions()))[1]
        norm = pos.zattrs["normalization"]
        assert sorted(norm) == sorted(CHANNELS)
        assert json.dumps({"GFP": norm["GFP"]}, sort_keys=True) == before
        assert sorted(plate.zattrs["normalization"]) == sorted(CHANNELS)


def test_preprocess_bad_input(plate_path, tmp_path):
    with pytest.raises(ValueError, match="'DAPI'"):
        compute_normalization_stats(plate_path, channel_names=["DAPI"], progress=False)
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        compute_normalization_stats(tmp_path / "missing.zarr", progress=False)


def test_preprocess_from_config_with_base(tmp_path, capsys):
    path = write_plate(tmp_path / "plate.zarr", version="0.5")
    (tmp_path / "base.yml").write_text("grid_spacing: 4\nnum_workers: 1\n")
    (tmp_path / "pre.yml").write_text(f"base: base.yml\ndata_path: {path}\nchannel_names: [GFP]\n")
    assert main(["preprocess", "-c", str(tmp_path / "pre.yml"), "--no_progress"]) == 0
    assert "['GFP']" in capsys.readouterr().out
    with open_ome_zarr(path, mode="r") as plate:
        name, pos = next(iter(plate.positions()))
        meta = read_norm_meta(pos)
        grid = np.asarray(pos["0"][:, 1, :, ::4, ::4])
    assert list(meta) == ["GFP"]
    _assert_close(meta["GFP"]["fov_statistics"], _numpy_stats(grid))
    (tmp_path / "bad.yml").write_text(f"data_path: {path}\nblock_size: 3\n")
    assert main(["preprocess", "-c", str(tmp_path / "bad.yml")]) == 2
    assert "block_size" in capsys.readouterr().err


def test_preprocess_ignores_nan_pixels_and_names_an_all_nan_sample(tmp_path):
    from viscy_data.synthetic import write_synthetic_plate

    path = tmp_path / "plate.zarr"
    write_synthetic_plate(path, shape=(2, 1, 1, 32, 32), channel_names=["GFP"], dtype="float32",
                          wells=[("A", "1")], fovs_per_well=1, normalization=False)  # fmt: skip
    with open_ome_zarr(path, mode="r+") as plate:
        image = plate["A/1/0"]["0"]
        pixels = np.asarray(image[:])
        pixels[0, 0, 0, :16] = np.nan
        image[0] = pixels[0]
    grid = pixels[0, 0][:, ::2, ::2]
    stats = compute_normalization_stats(path, grid_spacing=2, progress=False)
    got = stats.fovs["A/1/0"].timepoint_statistics["GFP"]["0"]
    _assert_close(got, _numpy_stats(grid[~np.isnan(grid)]))
    with open_ome_zarr(path, mode="r+") as plate:
        plate["A/1/0"]["0"][1] = np.full((1, 1, 32, 32), np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match=r"FOV 'A/1/0', channel 'GFP', t=1: .*only NaN"):
        compute_normalization_stats(path, grid_spacing=2, progress=False)


def test_get_val_stats_is_the_one_intensity_statistics_function():
    from viscy_data import INTENSITY_STATISTICS_KEYS, intensity_statistics
    from viscy_data.synthetic import compute_statistics
    from viscy_utils.mp_utils import STAT_KEYS as MP_STAT_KEYS
    from viscy_utils.mp_utils import get_val_stats

    values = np.array([3.0, np.nan, 1.0, 2.0], dtype=np.float32)
    assert get_val_stats(values) == intensity_statistics(values) == compute_statistics(values)
    assert tuple(get_val_stats(values)) == MP_STAT_KEYS == INTENSITY_STATISTICS_KEYS
    assert set(MP_STAT_KEYS) == STAT_KEYS
