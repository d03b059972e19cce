"""Session-scoped OME-Zarr plates shared by the viscy-data tests.

Plates are small (2 wells x 2 FOVs x 3 T x 2 C x 8 Z x 128 x 128) and written once per
session, in both NGFF 0.4 (zarr v2) and NGFF 0.5 (zarr v3). Tests must not modify them; a
test that needs a plate of its own writes it under ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

PLATE_SHAPE = (3, 2, 8, 128, 128)
PLATE_CHANNELS = ("Phase3D", "GFP")
PLATE_WELLS = (("A", "1"), ("B", "1"))
FOVS_PER_WELL = 2


def _stats(values: np.ndarray) -> dict[str, float]:
    values = values.astype(np.float64)
    q = np.percentile(values, [1, 5, 25, 50, 75, 95, 99])
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "median": float(q[3]),
        "iqr": float(q[4] - q[2]),
        "min": float(values.min()),
        "max": float(values.max()),
        "p1": float(q[0]),
        "p5": float(q[1]),
        "p95": float(q[5]),
        "p99": float(q[6]),
    }


def write_test_plate(
    path: Path,
    version: str = "0.5",
    shape: tuple[int, int, int, int, int] = PLATE_SHAPE,
    channel_names: tuple[str, ...] = PLATE_CHANNELS,
    wells: tuple[tuple[str, str], ...] = PLATE_WELLS,
    fovs_per_well: int = FOVS_PER_WELL,
    chunks: tuple[int, ...] | None = None,
    shards_ratio: tuple[int, ...] | None = None,
    normalization: bool = True,
    foreground_mask: bool = False,
    seed: int = 0,
) -> Path:
    """Write a small HCS plate of random uint16 images with iohub."""
    from iohub.ngff import open_ome_zarr

    rng = np.random.default_rng(seed)
    all_data = {}
    with open_ome_zarr(
        path, layout="hcs", mode="w-", channel_names=list(channel_names), version=version
    ) as plate:
        for row, col in wells:
            for f in range(fovs_per_well):
                pos = plate.create_position(row, col, str(f))
                data = rng.integers(0, 4000, size=shape, dtype=np.uint16)
                pos.create_image("0", data, chunks=chunks, shards_ratio=shards_ratio)
                if foreground_mask:
                    mask = (data > 2000).astype(np.uint8)
                    pos.create_image("fg_mask", mask, chunks=chunks, shards_ratio=shards_ratio)
                all_data[f"{row}/{col}/{f}"] = data
        if normalization:
            stacked = np.stack(list(all_data.values()))
            for name, data in all_data.items():
                norm = {}
                for c, channel in enumerate(channel_names):
                    norm[channel] = {
                        "dataset_statistics": _stats(stacked[:, :, c]),
                        "fov_statistics": _stats(data[:, c]),
                        "timepoint_statistics": {
                            str(t): _stats(data[t, c]) for t in range(shape[0])
                        },
                    }
                plate[name].zattrs["normalization"] = norm
            plate.zattrs["normalization"] = {
                channel: {"dataset_statistics": _stats(stacked[:, :, c])}
                for c, channel in enumerate(channel_names)
            }
    return path


@pytest.fixture(scope="session", params=["0.4", "0.5"])
def hcs_plate(request, tmp_path_factory) -> Path:
    """A small plate with normalization metadata, in NGFF 0.4 and 0.5 (parametrized)."""
    version = request.param
    path = tmp_path_factory.mktemp(f"plate_v{version}") / "plate.zarr"
    return write_test_plate(path, version=version)


@pytest.fixture(scope="session")
def hcs_plate_v5(tmp_path_factory) -> Path:
    """The NGFF 0.5 plate only (for tests that need one format)."""
    path = tmp_path_factory.mktemp("plate_v05_single") / "plate.zarr"
    return write_test_plate(path, version="0.5", foreground_mask=True)


@pytest.fixture(scope="session")
def sharded_plate(tmp_path_factory) -> Path:
    """An NGFF 0.5 plate with sharded arrays (inner chunks 1x1x4x32x32, shards 1x1x8x64x64)."""
    path = tmp_path_factory.mktemp("plate_sharded") / "plate.zarr"
    return write_test_plate(
        path,
        version="0.5",
        fovs_per_well=1,
        chunks=(1, 1, 4, 32, 32),
        shards_ratio=(1, 1, 2, 2, 2),
        normalization=False,
    )
