"""Shared fixtures: small synthetic OME-Zarr plates."""

from __future__ import annotations

from pathlib import Path

import pytest

from viscy_data.synthetic import write_synthetic_plate

SHAPE = (3, 2, 2, 32, 32)  # T, C, Z, Y, X
CHANNELS = ("Phase3D", "GFP")


def write_plate(path: Path, version: str = "0.5", normalization: bool = False) -> Path:
    """A small plate of 2 wells x 2 FOVs (3 cells each) from ``viscy_data.synthetic``."""
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


@pytest.fixture(scope="session")
def plate_path(tmp_path_factory) -> Path:
    """A plate (zarr v3) without normalization metadata, shared by the session."""
    return write_plate(tmp_path_factory.mktemp("plate") / "plate.zarr", version="0.5")
