"""Intensity statistics and a small process-pool helper."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

STAT_KEYS = ("mean", "std", "median", "iqr", "min", "max", "p1", "p5", "p95", "p99")


def get_val_stats(sample_values) -> dict[str, float]:
    """Summary statistics of sampled intensities.

    Parameters
    ----------
    sample_values : array-like
        Intensities (any shape); NaNs are ignored.

    Returns
    -------
    dict[str, float]
        ``mean, std, median, iqr, min, max, p1, p5, p95, p99`` as Python floats.
    """
    values = np.asarray(sample_values, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("Cannot compute statistics of an empty sample")
    p1, p5, p25, p50, p75, p95, p99 = np.percentile(values, [1, 5, 25, 50, 75, 95, 99])
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "median": float(p50),
        "iqr": float(p75 - p25),
        "min": float(values.min()),
        "max": float(values.max()),
        "p1": float(p1),
        "p5": float(p5),
        "p95": float(p95),
        "p99": float(p99),
    }


def mp_wrapper(fn: Callable[..., Any], fn_args: Iterable[Sequence[Any]], workers: int) -> list[Any]:
    """Call ``fn(*args)`` for each ``args`` in ``fn_args`` on a process pool.

    Parameters
    ----------
    fn : callable
        A picklable (module-level) function.
    fn_args : iterable of sequences
        Positional arguments of each call.
    workers : int
        Processes; ``<= 1`` runs in the calling process.

    Returns
    -------
    list
        Results in the order of ``fn_args``.
    """
    fn_args = list(fn_args)
    if workers <= 1:
        return [fn(*args) for args in fn_args]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, *zip(*fn_args, strict=True)))
