"""Session-scoped synthetic OME-Zarr plates shared by the viscy-data tests.

Plates come from :mod:`viscy_data.synthetic` and are small (2 wells x 2 FOVs x 3 T x 2 C x
8 Z x 128 x 128, uint16), written once per session. Tests must not modify them; a test that
needs a plate of its own writes it under ``tmp_path``.

Fixtures (each returns a :class:`viscy_data.synthetic.SyntheticPlate`):

- ``hcs_plate``: parametrized over NGFF "0.4" (zarr v2) and "0.5" (zarr v3), with
  normalization metadata and tracks CSVs.
- ``hcs_plate_v5``: NGFF 0.5 only, with normalization metadata, foreground masks
  (image ``"fg_mask"``) and tracks CSVs.
- ``sharded_plate``: NGFF 0.5 with sharded arrays and no normalization metadata.
"""

from __future__ import annotations

import pytest

from viscy_data.synthetic import SyntheticPlate, write_synthetic_plate

PLATE_SHAPE = (3, 2, 8, 128, 128)
PLATE_CHANNELS = ("Phase3D", "GFP")
PLATE_WELLS = (("A", "1"), ("B", "1"))
FOVS_PER_WELL = 2


def _plate(root, version: str, **kwargs) -> SyntheticPlate:
    options = {
        "shape": PLATE_SHAPE,
        "channel_names": PLATE_CHANNELS,
        "wells": PLATE_WELLS,
        "fovs_per_well": FOVS_PER_WELL,
        "version": version,
        "seed": 0,
        "tracks_path": root / "tracks",
        "cells_per_fov": 4,
    }
    options.update(kwargs)
    return write_synthetic_plate(root / "plate.zarr", **options)


@pytest.fixture(scope="session", params=["0.4", "0.5"])
def hcs_plate(request, tmp_path_factory) -> SyntheticPlate:
    """A small plate with normalization metadata and tracks, in NGFF 0.4 and 0.5."""
    version = request.param
    return _plate(tmp_path_factory.mktemp(f"plate_v{version}"), version)


@pytest.fixture(scope="session")
def hcs_plate_v5(tmp_path_factory) -> SyntheticPlate:
    """NGFF 0.5 plate with normalization metadata, foreground masks and tracks."""
    return _plate(tmp_path_factory.mktemp("plate_v05_fg"), "0.5", foreground_mask=True, seed=1)


@pytest.fixture(scope="session")
def sharded_plate(tmp_path_factory) -> SyntheticPlate:
    """NGFF 0.5 plate with sharded arrays (chunks 1x1x4x32x32, shards of 1x1x2x2x2 chunks)."""
    return _plate(
        tmp_path_factory.mktemp("plate_sharded"),
        "0.5",
        fovs_per_well=1,
        chunks=(1, 1, 4, 32, 32),
        shards_ratio=(1, 1, 2, 2, 2),
        normalization=False,
        tracks_path=None,
        seed=2,
    )
