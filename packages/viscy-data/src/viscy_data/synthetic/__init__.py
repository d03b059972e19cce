"""Synthetic HCS OME-Zarr plates of tracked, dividing, infected cells.

The generator writes real plates with iohub (NGFF 0.4 on zarr v2 or NGFF 0.5 on zarr v3),
with normalization metadata in the layout that :func:`viscy_data.read_norm_meta` reads,
optional foreground masks, and (for time-lapse use) one tracks CSV per FOV in the layout that
the triplet pipelines read. It is the data of the test suite, the benchmarks and the DynaCLR
demo, so it is deterministic for a seed and fast: cells are rendered only inside small windows
around them, and noise is drawn in float32.

Use it as a library::

    from viscy_data.synthetic import write_synthetic_plate

    plate = write_synthetic_plate("plate.zarr", shape=(8, 2, 8, 256, 256), tracks_path="tracks")

or as a command: ``python -m viscy_data.synthetic --help``.

The package has one module per step: ``_simulate`` (tracks and phenotypes), ``_render``
(pixels, one renderer per channel kind), ``_write`` (the plate, the tracks CSVs) and
``_cli`` (the command). Statistics are :func:`viscy_data.intensity_statistics`.
"""

from viscy_data.statistics import INTENSITY_STATISTICS_KEYS, intensity_statistics
from viscy_data.synthetic._cli import main
from viscy_data.synthetic._render import PHENOTYPES
from viscy_data.synthetic._simulate import TRACKS_COLUMNS, simulate_tracks
from viscy_data.synthetic._write import SyntheticPlate, write_synthetic_plate

#: Statistics written at every normalization level (those of ``viscy preprocess``).
STATISTICS_KEYS = INTENSITY_STATISTICS_KEYS

#: Summary statistics of a sample of pixel values: :func:`viscy_data.intensity_statistics`.
compute_statistics = intensity_statistics

__all__ = [
    "PHENOTYPES",
    "STATISTICS_KEYS",
    "TRACKS_COLUMNS",
    "SyntheticPlate",
    "compute_statistics",
    "main",
    "simulate_tracks",
    "write_synthetic_plate",
]
