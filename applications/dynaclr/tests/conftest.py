"""Shared, session-scoped synthetic data of the DynaCLR tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def demo_plate(tmp_path_factory):
    """A plate with foreground masks, its tracks and annotations, in the demo's layout."""
    from viscy_data.synthetic import write_synthetic_plate

    root = tmp_path_factory.mktemp("modules_cli")
    plate = write_synthetic_plate(
        root / "demo_output" / "plate.zarr",
        shape=(3, 2, 1, 64, 64),
        channel_names=("Phase3D", "GFP"),
        wells=(("A", "1"), ("A", "2"), ("B", "1"), ("B", "2")),
        fovs_per_well=4,
        tracks_path=root / "demo_output" / "tracks",
        cells_per_fov=3,
        infection_onset=1,
        foreground_mask=True,
        seed=1,
    )
    return root, plate


@pytest.fixture(scope="session")
def two_experiments(tmp_path_factory):
    """Two synthetic experiments (different channel sets and frame intervals) and their YAML."""
    from viscy_data.synthetic import write_synthetic_plate

    root = tmp_path_factory.mktemp("two_experiments")
    plates = {}
    for name, seed, channels, n_t in (
        ("exp_a", 1, ("Phase3D", "GFP"), 4),
        ("exp_b", 2, ("Phase3D", "GFP", "mCherry"), 5),
    ):
        plates[name] = write_synthetic_plate(
            root / f"{name}.zarr",
            shape=(n_t, len(channels), 1, 64, 64),
            channel_names=channels,
            wells=(("A", "1"), ("B", "1")),
            fovs_per_well=1,
            tracks_path=root / f"{name}_tracks",
            cells_per_fov=3,
            seed=seed,
        )
    (root / "experiments.yml").write_text(
        "training_channels: shared\n"
        "experiments:\n"
        "  - {name: exp_a, data_path: exp_a.zarr, tracks_path: exp_a_tracks,\n"
        "     channel_names: [Phase3D, GFP], interval_minutes: 30, start_hpi: 2.0,\n"
        "     condition_wells: {uninfected: [A/1], infected: [B/1]}}\n"
        "  - {name: exp_b, data_path: exp_b.zarr, tracks_path: exp_b_tracks,\n"
        "     channel_names: [Phase3D, GFP, mCherry], interval_minutes: 15, start_hpi: 4.0,\n"
        "     condition_wells: {uninfected: [A/1], infected: [B/1]}}\n"
    )
    return root, plates


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
