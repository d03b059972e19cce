"""Temporal smoothness: do embeddings of one cell change slowly over time."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from viscy_utils.evaluation._split import as_2d_float, check_length


@dataclass(frozen=True)
class TemporalSmoothnessResult:
    """Adjacent-frame versus random-pair embedding distances.

    Attributes
    ----------
    adjacent_distance : float
        Mean distance between embeddings of the same track at adjacent timepoints.
    random_distance : float
        Mean distance between embeddings of random pairs of samples.
    ratio : float
        ``adjacent_distance / random_distance``: lower is smoother (1 = no better
        than random).
    n_adjacent_pairs, n_random_pairs : int
        Number of pairs averaged.
    adjacent_distances, random_distances : np.ndarray
        The distance of every pair (e.g. to plot their distributions).
    """

    adjacent_distance: float
    random_distance: float
    ratio: float
    n_adjacent_pairs: int
    n_random_pairs: int
    adjacent_distances: np.ndarray = field(default=None, repr=False, compare=False)
    random_distances: np.ndarray = field(default=None, repr=False, compare=False)


def _distance(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    if metric == "euclidean":
        return np.linalg.norm(a - b, axis=1)
    if metric == "cosine":
        na = np.linalg.norm(a, axis=1)
        nb = np.linalg.norm(b, axis=1)
        denom = np.maximum(na * nb, np.finfo(np.float64).tiny)
        return 1.0 - np.sum(a * b, axis=1) / denom
    raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")


def temporal_smoothness(
    embeddings,
    track_ids,
    t,
    metric: str = "euclidean",
    max_gap: int = 1,
    n_random_pairs: int = 10_000,
    seed: int = 0,
) -> TemporalSmoothnessResult:
    """Mean distance of a track's embeddings at adjacent t over that of random pairs.

    Parameters
    ----------
    embeddings : array-like, shape (n_samples, n_features)
    track_ids : array-like, shape (n_samples,)
        Identity of each sample's track. Track ids are often only unique within
        a FOV: pass a combined key (e.g. ``fov_name + "/" + track_id``).
    t : array-like, shape (n_samples,)
        Timepoint of each sample.
    metric : {"euclidean", "cosine"}
    max_gap : int
        Successive observations of a track at most this many frames apart count
        as adjacent.
    n_random_pairs : int
        Random pairs (of distinct samples) drawn for the baseline.
    seed : int
        Seed of the random pairs.

    Returns
    -------
    TemporalSmoothnessResult

    Raises
    ------
    ValueError
        If no track has two observations within ``max_gap`` frames.
    """
    x = as_2d_float(embeddings)
    tracks = check_length(len(x), track_ids, "track_ids")
    times = check_length(len(x), t, "t")
    if len(x) < 2:
        raise ValueError("temporal_smoothness needs at least 2 samples")
    df = pd.DataFrame({"track": tracks, "t": times, "row": np.arange(len(x))})
    df = df.sort_values(["track", "t"], kind="stable")
    nxt = df.groupby("track", sort=False).shift(-1)
    ok = nxt["t"].notna() & ((nxt["t"] - df["t"]) <= max_gap) & ((nxt["t"] - df["t"]) > 0)
    first = df.loc[ok, "row"].to_numpy()
    second = nxt.loc[ok, "row"].to_numpy().astype(np.int64)
    if len(first) == 0:
        raise ValueError(f"No track has two observations at most {max_gap} frame(s) apart")
    adjacent_d = _distance(x[first], x[second], metric)
    adjacent = float(np.mean(adjacent_d))

    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(x), n_random_pairs)
    b = (a + rng.integers(1, len(x), n_random_pairs)) % len(x)  # never the same sample
    random_d = _distance(x[a], x[b], metric)
    random = float(np.mean(random_d))
    ratio = adjacent / random if random > 0 else float("nan")
    return TemporalSmoothnessResult(
        adjacent, random, ratio, len(first), n_random_pairs, adjacent_d, random_d
    )
