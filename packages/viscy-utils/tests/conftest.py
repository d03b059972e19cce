"""Shared fixtures: small real OME-Zarr plates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHAPE = (3, 2, 2, 32, 32)  # T, C, Z, Y, X
CHANNELS = ("Phase3D", "GFP")


def write_plate(path: Path, version: str = "0.5", normalization: bool = False) -> Path:
    """A small plate: viscy_data.synthetic when available, else written here with iohub."""
    try:
        from viscy_data.synthetic import write_synthetic_plate
    except ImportError:
        write_synthetic_plate = None
    if write_synthetic_plate is not None:
        write_synthetic_plate(
            path,
            shape=SHAPE,
            channel_names=CHANNELS,
            wells=(("A", "1"), ("B", "1")),
            fovs_per_well=2,
            version=version,
            normalization=normalization,
            cells_per_fov=3,
        )
        return Path(path)
    from iohub.ngff import open_ome_zarr

    rng = np.random.default_rng(0)
    with open_ome_zarr(
        path, layout="hcs", mode="w-", channel_names=list(CHANNELS), version=version
    ) as plate:
        for row in ("A", "B"):
            for fov in ("0", "1"):
                pos = plate.create_position(row, "1", fov)
                data = (
                    rng.gamma(2.0, 100.0, size=SHAPE) * np.array([1, 5])[None, :, None, None, None]
                )
                pos.create_zeros("0", shape=SHAPE, dtype=np.uint16)
                pos["0"][:] = data.astype(np.uint16)
    return Path(path)


@pytest.fixture(scope="session")
def plate_path(tmp_path_factory) -> Path:
    """A fresh plate (zarr v3) without normalization metadata, shared by the session."""
    return write_plate(tmp_path_factory.mktemp("plate") / "plate.zarr", version="0.5")
