"""Shared fixtures of the DynaCLR tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass
class EmbeddingStudy:
    """A tiny synthetic plate and two embedding stores of its cells."""

    root: Path
    plate: Path
    annotations: Path
    cells: object  # pandas.DataFrame
    signal: Path  # embeddings that carry the infection state
    noise: Path  # embeddings that carry nothing


@pytest.fixture(scope="session")
def embedding_study(tmp_path_factory) -> EmbeddingStudy:
    """Plate of 2 wells x 3 FOVs x 4 timepoints; embeddings written with EmbeddingWriter's
    writer function. Tests copy the stores before changing them."""
    from viscy_data.synthetic import write_synthetic_plate
    from viscy_utils.callbacks import write_embedding_dataset

    root = tmp_path_factory.mktemp("study")
    plate = write_synthetic_plate(
        root / "plate.zarr",
        shape=(4, 2, 1, 64, 64),
        wells=(("A", "1"), ("B", "1")),
        fovs_per_well=3,
        tracks_path=root / "tracks",
        cells_per_fov=4,
        infection_onset=1,
        seed=2,
    )
    cells = plate.cells.reset_index(drop=True)
    rng = np.random.default_rng(0)
    infected = (cells["infection_state"] == "infected").to_numpy()
    signal = rng.normal(size=(len(cells), 8)).astype(np.float32)
    signal[:, 0] += 6.0 * infected
    # each track drifts slowly: adjacent frames are close
    keys = list(zip(cells["fov_name"], cells["track_id"], strict=True))
    offset = {k: rng.normal(size=8) * 1.5 for k in sorted(set(keys))}
    signal += np.stack([offset[k] for k in keys]).astype(np.float32)
    obs = cells[["fov_name", "track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"]]
    write_embedding_dataset(root / "signal.zarr", signal, obs)
    write_embedding_dataset(root / "noise.zarr", rng.normal(size=signal.shape), obs)
    annotations = root / "annotations.csv"
    cells[["fov_name", "track_id", "t", "infection_state", "condition"]].to_csv(
        annotations, index=False
    )
    return EmbeddingStudy(
        root, plate.path, annotations, cells, root / "signal.zarr", root / "noise.zarr"
    )


@pytest.fixture
def study_copy(embedding_study, tmp_path) -> EmbeddingStudy:
    """Copies of the study's stores that a test may rewrite."""
    import shutil

    for name in ("signal.zarr", "noise.zarr"):
        shutil.copytree(embedding_study.root / name, tmp_path / name)
    return EmbeddingStudy(
        embedding_study.root,
        embedding_study.plate,
        embedding_study.annotations,
        embedding_study.cells,
        tmp_path / "signal.zarr",
        tmp_path / "noise.zarr",
    )
