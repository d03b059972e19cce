"""Simulation of cells in one FOV: tracks that drift and divide, and their phenotypes.

Everything here is drawn from the generator passed in, in a fixed order, so the same seed
gives the same cells. Pixels are drawn from these tables by :mod:`._render`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Columns of every tracks CSV the generator writes.
TRACKS_COLUMNS = ["track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"]

#: Conditions a well can have; by default wells alternate between them.
CONDITIONS = ("uninfected", "infected")

#: Cell radius in pixels, before per-cell jitter.
CELL_RADIUS = 9.0


def simulate_tracks(
    rng: np.random.Generator,
    n_cells: int,
    n_timepoints: int,
    yx_shape: tuple[int, int],
    z_size: int,
    division_fraction: float = 0.5,
) -> pd.DataFrame:
    """Simulate cells that drift and divide in one FOV.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness.
    n_cells : int
        Cells at the first timepoint.
    n_timepoints : int
        Number of timepoints.
    yx_shape : tuple of int
        Image size; centroids stay at least one cell radius inside it.
    z_size : int
        Number of Z slices; each cell has a fixed focal slice.
    division_fraction : float
        Fraction of the initial cells that divide once, at a random time in the middle third.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TRACKS_COLUMNS` plus ``radius``, ``angle`` and ``lineage`` (the
        initial cell the row descends from). Detection ``id`` is unique within the FOV;
        ``parent_track_id`` and ``parent_id`` are -1 for cells without a parent.
    """
    height, width = yx_shape
    margin = CELL_RADIUS + 2.0
    lo = np.array([margin, margin])
    hi = np.array([height - 1 - margin, width - 1 - margin])
    if np.any(hi <= lo):
        raise ValueError(f"Image size {yx_shape} is too small for cells of radius {CELL_RADIUS}.")

    rows: list[tuple] = []
    next_track = 1
    next_id = 1
    # live cells: track_id -> [position (2,), velocity (2,), z, radius, angle, lineage, divide_at]
    live: dict[int, list] = {}
    n_divide = int(round(division_fraction * n_cells)) if n_timepoints >= 3 else 0
    divide_slots = rng.permutation(n_cells)[:n_divide]
    first, last = max(1, n_timepoints // 3), max(1, (2 * n_timepoints) // 3)
    for i in range(n_cells):
        pos = lo + rng.random(2) * (hi - lo)
        vel = rng.normal(0.0, 1.5, size=2)
        z = float(rng.integers(0, z_size)) if z_size > 1 else 0.0
        radius = CELL_RADIUS * rng.uniform(0.8, 1.2)
        divide_at = int(rng.integers(first, last + 1)) if i in divide_slots else -1
        live[next_track] = [pos, vel, z, radius, rng.uniform(0, np.pi), i, divide_at, -1, -1]
        next_track += 1

    for t in range(n_timepoints):
        born: dict[int, list] = {}
        for track_id, cell in list(live.items()):
            pos, vel, z, radius, angle, lineage, divide_at, parent_track, parent_id = cell
            det_id = next_id
            next_id += 1
            rows.append(
                (
                    track_id,
                    t,
                    det_id,
                    parent_track,
                    parent_id,
                    z,
                    pos[0],
                    pos[1],
                    radius,
                    angle,
                    lineage,
                )
            )
            if t == divide_at and t + 1 < n_timepoints:
                offset = np.array([np.cos(angle), np.sin(angle)]) * radius * 0.9
                for sign in (1.0, -1.0):
                    child_pos = np.clip(pos + sign * offset, lo, hi)
                    born[next_track] = [
                        child_pos,
                        rng.normal(0.0, 1.5, size=2),
                        z,
                        radius * 0.85,
                        rng.uniform(0, np.pi),
                        lineage,
                        -1,
                        track_id,
                        det_id,
                    ]
                    next_track += 1
                del live[track_id]
                continue
            # random walk with momentum, reflected at the borders
            vel = 0.7 * vel + rng.normal(0.0, 1.0, size=2)
            new = pos + vel
            bounce = (new < lo) | (new > hi)
            vel[bounce] *= -1
            cell[0] = np.clip(new, lo, hi)
            cell[1] = vel
            cell[7], cell[8] = -1, -1  # the parent link belongs to the first row only
        live.update(born)

    columns = [*TRACKS_COLUMNS, "radius", "angle", "lineage"]
    df = pd.DataFrame(rows, columns=columns)
    df["z"] = df["z"].astype(np.int64)
    return df


def infection_onsets(
    rng: np.random.Generator, tracks: pd.DataFrame, infected: bool, onset: int
) -> dict[int, int]:
    """Timepoint from which each track shows the infection phenotype (-1 never)."""
    lineage_onset = {}
    for lineage in np.unique(tracks["lineage"]):
        lineage_onset[int(lineage)] = onset + int(rng.integers(0, 2)) if infected else -1
    return {
        int(tid): lineage_onset[int(lin)]
        for tid, lin in tracks.groupby("track_id")["lineage"].first().items()
    }


def default_well_conditions(wells: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Well name (``"A/1"``) to condition, alternating through :data:`CONDITIONS`."""
    return {f"{r}/{c}": CONDITIONS[i % 2] for i, (r, c) in enumerate(wells)}
