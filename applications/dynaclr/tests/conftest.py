"""Shared, session-scoped synthetic data of the dynaclr module tests."""

from __future__ import annotations

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
