"""The one intensity-statistics function behind every writer of normalization metadata."""

import numpy as np
import pytest

from viscy_data import INTENSITY_STATISTICS_KEYS, intensity_statistics
from viscy_data.synthetic import STATISTICS_KEYS, compute_statistics


def _reference(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64).ravel()
    levels = [1, 5, 25, 50, 75, 95, 99]
    q = dict(zip(levels, np.nanpercentile(v, levels), strict=True))
    return {
        "min": np.nanmin(v), "max": np.nanmax(v), "mean": np.nanmean(v), "std": np.nanstd(v),
        "median": q[50], "iqr": q[75] - q[25], "p5": q[5], "p95": q[95], "p95_p5": q[95] - q[5],
        "p1": q[1], "p99": q[99], "p99_p1": q[99] - q[1],
    }  # fmt: skip


def test_keys_order_and_values_match_numpy():
    values = np.random.default_rng(0).integers(0, 4000, size=(3, 17, 19)).astype(np.uint16)
    stats = intensity_statistics(values)
    assert tuple(stats) == INTENSITY_STATISTICS_KEYS
    assert all(type(v) is float for v in stats.values())
    assert stats == pytest.approx(_reference(values), rel=1e-12)
    assert stats["median"] == float(np.median(values))


def test_nan_values_are_ignored():
    rng = np.random.default_rng(1)
    values = rng.normal(100.0, 10.0, size=2000)
    with_nan = values.copy()
    with_nan[rng.random(values.size) < 0.2] = np.nan
    stats = intensity_statistics(with_nan)
    assert all(np.isfinite(v) for v in stats.values())
    # the statistics of the values that are not NaN (std up to the last bit)
    assert stats == pytest.approx(intensity_statistics(with_nan[~np.isnan(with_nan)]), rel=1e-14)
    assert stats == pytest.approx(_reference(with_nan), rel=1e-12)
    assert stats["mean"] != pytest.approx(float(values.mean()), rel=1e-9)


def test_infinite_values_are_kept():
    stats = intensity_statistics(np.array([1.0, 2.0, np.inf]))
    assert stats["max"] == stats["mean"] == np.inf
    assert (stats["min"], stats["p1"]) == (1.0, pytest.approx(1.02))
    assert np.isnan(stats["std"])


@pytest.mark.parametrize(
    ("values", "message"),
    [(np.array([]), "no values"), (np.full((2, 3), np.nan, dtype=np.float32), "only NaN")],
)
def test_nothing_to_summarise_is_an_error(values, message):
    with pytest.raises(ValueError, match=message):
        intensity_statistics(values)


def test_non_numeric_values_are_an_error():
    with pytest.raises(TypeError, match="numeric"):
        intensity_statistics(np.array(["a", "b"]))


def test_mean_in_the_sample_precision():
    values = np.random.default_rng(2).normal(100.0, 20.0, size=5001).astype(np.float32)
    stats = intensity_statistics(values)
    assert stats["mean"] == float(np.mean(values))  # float32 accumulation, as 0.1.0
    assert stats["std"] == float(np.std(values))
    assert stats["p95"] == float(np.percentile(values.astype(np.float64), 95))


def test_the_generator_uses_it():
    values = np.arange(101, dtype=np.float32)
    assert compute_statistics(values) == intensity_statistics(values)
    assert STATISTICS_KEYS == INTENSITY_STATISTICS_KEYS
