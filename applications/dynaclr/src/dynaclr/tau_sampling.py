"""Variable temporal offset (tau) between an anchor and its positive.

Small offsets are favoured: ``P(tau) ∝ exp(-decay_rate * (tau - tau_min) / (tau_max - tau_min))``
over the integer frame offsets in ``[tau_min, tau_max]``. ``decay_rate=0`` is uniform.
Offsets are given in hours by the user and converted to frames per experiment, since frame
intervals differ between experiments.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["sample_tau", "tau_probabilities", "tau_range_frames"]


def tau_range_frames(
    tau_range_hours: tuple[float, float], interval_minutes: float
) -> tuple[int, int]:
    """Convert a tau range in hours to whole frames for one experiment's frame interval.

    The lower bound rounds up and the upper bound rounds down, so every frame offset in the
    result lies inside the range in hours; a range narrower than one frame keeps the
    nearest single offset.

    Parameters
    ----------
    tau_range_hours : tuple[float, float]
        ``(min_hours, max_hours)``, ``0 <= min_hours <= max_hours``.
    interval_minutes : float
        Time between frames of the experiment.

    Returns
    -------
    tuple[int, int]
        ``(min_frames, max_frames)``.
    """
    lo, hi = (float(v) for v in tau_range_hours)
    if lo < 0 or hi < lo:
        raise ValueError(f"tau_range must satisfy 0 <= min <= max, got {tau_range_hours}")
    if interval_minutes <= 0:
        raise ValueError(f"interval_minutes must be > 0, got {interval_minutes}")
    frames_lo = lo * 60.0 / interval_minutes
    frames_hi = hi * 60.0 / interval_minutes
    eps = 1e-9
    f_lo, f_hi = math.ceil(frames_lo - eps), math.floor(frames_hi + eps)
    if f_hi < f_lo:
        nearest = max(round((frames_lo + frames_hi) / 2), 0)
        return nearest, nearest
    return f_lo, f_hi


def tau_probabilities(tau_min: int, tau_max: int, decay_rate: float = 2.0) -> np.ndarray:
    """Probability of each offset ``tau_min, ..., tau_max`` (exponential decay)."""
    if tau_max < tau_min:
        raise ValueError(f"need tau_min <= tau_max, got {tau_min}, {tau_max}")
    if decay_rate < 0:
        raise ValueError(f"decay_rate must be >= 0, got {decay_rate}")
    offsets = np.arange(tau_min, tau_max + 1, dtype=np.float64)
    span = max(tau_max - tau_min, 1)
    weights = np.exp(-decay_rate * (offsets - tau_min) / span)
    return weights / weights.sum()


def sample_tau(
    tau_min: int,
    tau_max: int,
    rng: np.random.Generator,
    decay_rate: float = 2.0,
    size: int | None = None,
) -> int | np.ndarray:
    """Draw frame offsets in ``[tau_min, tau_max]`` favouring small ones.

    Parameters
    ----------
    tau_min, tau_max : int
        Inclusive range of frame offsets.
    rng : np.random.Generator
        Source of randomness (owned by the caller, e.g. the dataset).
    decay_rate : float
        Strength of the preference for small offsets; 0 is uniform.
    size : int, optional
        Number of draws; ``None`` returns a single int.
    """
    p = tau_probabilities(tau_min, tau_max, decay_rate)
    draws = tau_min + rng.choice(len(p), size=size, p=p)
    return int(draws) if size is None else draws.astype(np.int64)
