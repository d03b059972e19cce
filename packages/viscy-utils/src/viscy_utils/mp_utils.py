"""Intensity statistics and a small process-pool helper."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from viscy_data.statistics import INTENSITY_STATISTICS_KEYS, intensity_statistics

#: Keys of :func:`get_val_stats`.
STAT_KEYS = INTENSITY_STATISTICS_KEYS


def get_val_stats(sample_values) -> dict[str, float]:
    """Summary statistics of sampled intensities (:func:`viscy_data.intensity_statistics`).

    Parameters
    ----------
    sample_values : array-like
        Intensities (any shape); NaNs are ignored.

    Returns
    -------
    dict[str, float]
        ``min, max, mean, std, median, iqr, p5, p95, p95_p5, p1, p99, p99_p1`` as floats.

    Raises
    ------
    ValueError
        If no value is left once NaNs are dropped.
    """
    return intensity_statistics(sample_values)


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
