"""Intensity statistics of a sample of pixels: the values normalization metadata holds.

One function, :func:`intensity_statistics`, computes them for every writer of normalization
metadata (``viscy preprocess`` and the synthetic plate generator), so a plate carries the
same keys, computed the same way, whichever wrote it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["INTENSITY_STATISTICS_KEYS", "intensity_statistics"]

#: Keys of :func:`intensity_statistics`, in the order it returns them (that of 0.1.0's
#: ``viscy preprocess``): ``p95_p5`` is ``p95 - p5`` and ``p99_p1`` is ``p99 - p1``.
INTENSITY_STATISTICS_KEYS = (
    "min",
    "max",
    "mean",
    "std",
    "median",
    "iqr",
    "p5",
    "p95",
    "p95_p5",
    "p1",
    "p99",
    "p99_p1",
)

_PERCENTILES = [1, 5, 25, 50, 75, 95, 99]


def intensity_statistics(values: ArrayLike) -> dict[str, float]:
    """Summary statistics of pixel intensities, keyed by :data:`INTENSITY_STATISTICS_KEYS`.

    Parameters
    ----------
    values : array-like
        Intensities of any shape and numeric dtype; flattened. Percentiles, min and max are
        computed in float64; mean and std in the sample's floating precision (float64 for
        integer samples), as 0.1.0's ``get_val_stats`` did.

    Returns
    -------
    dict[str, float]
        ``min, max, mean, std, median, iqr, p5, p95, p95_p5, p1, p99, p99_p1`` as Python
        floats. ``std`` is the population standard deviation (``ddof=0``); percentiles use
        linear interpolation (numpy's default); ``iqr`` is ``p75 - p25``.

    Raises
    ------
    TypeError
        If ``values`` is not numeric.
    ValueError
        If ``values`` holds no number once NaNs are dropped (empty, or all NaN).

    Notes
    -----
    NaN values are ignored: they are dropped before anything is computed, so the statistics
    are those of the finite-or-infinite values that remain (as numpy's ``nan*`` functions
    give). Infinite values are kept and propagate: ``max`` is ``inf``, and a statistic that
    would take ``inf - inf`` (``std``, a percentile between two infinities) is NaN. A sample
    with no value left is an error rather than a table of NaNs, which would normalize every
    pixel to NaN without a word.
    """
    sample = np.asarray(values).ravel()
    if not (np.issubdtype(sample.dtype, np.number) or sample.dtype == bool):
        raise TypeError(f"Intensity statistics need numeric values, got dtype {sample.dtype}.")
    flat = sample.astype(np.float64)
    nan = np.isnan(flat)
    if nan.any():
        flat = flat[~nan]
    if flat.size == 0:
        what = "only NaN values" if sample.size else "no values"
        raise ValueError(f"Cannot compute intensity statistics of a sample with {what}.")
    with np.errstate(invalid="ignore"):  # inf - inf in a percentile or std is NaN, as stated
        p1, p5, p25, p50, p75, p95, p99 = np.percentile(flat, _PERCENTILES)
        # mean and std in the sample's own floating precision, as 0.1.0 computed them
        mean, std = np.nanmean(sample), np.nanstd(sample)
    return {
        "min": float(flat.min()),
        "max": float(flat.max()),
        "mean": float(mean),
        "std": float(std),
        "median": float(p50),
        "iqr": float(p75 - p25),
        "p5": float(p5),
        "p95": float(p95),
        "p95_p5": float(p95 - p5),
        "p1": float(p1),
        "p99": float(p99),
        "p99_p1": float(p99 - p1),
    }
