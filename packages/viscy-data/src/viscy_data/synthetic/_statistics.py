"""Summary statistics written at every normalization level of a synthetic plate."""

from __future__ import annotations

import numpy as np

#: Statistics written at every normalization level.
STATISTICS_KEYS = ("mean", "std", "median", "iqr", "min", "max", "p1", "p5", "p95", "p99")


def compute_statistics(values: np.ndarray) -> dict[str, float]:
    """Summary statistics of a sample of pixel values, keyed by :data:`STATISTICS_KEYS`.

    Parameters
    ----------
    values : numpy.ndarray
        Pixel values of any shape; flattened.

    Returns
    -------
    dict
        ``mean, std, median, iqr, min, max, p1, p5, p95, p99`` as Python floats.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    p1, p5, p25, p50, p75, p95, p99 = np.percentile(flat, [1, 5, 25, 50, 75, 95, 99])
    return {
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "median": float(p50),
        "iqr": float(p75 - p25),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "p1": float(p1),
        "p5": float(p5),
        "p95": float(p95),
        "p99": float(p99),
    }
