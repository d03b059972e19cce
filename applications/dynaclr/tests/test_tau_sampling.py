"""Exponential-decay tau sampling (AUG-03)."""

from __future__ import annotations

import numpy as np
import pytest

from dynaclr.tau_sampling import sample_tau, tau_probabilities, tau_range_frames


def test_range_in_hours_to_frames():
    assert tau_range_frames((0.5, 2.0), interval_minutes=30) == (1, 4)
    assert tau_range_frames((0.5, 2.0), interval_minutes=15) == (2, 8)
    assert tau_range_frames((0.0, 1.0), interval_minutes=20) == (0, 3)
    # narrower than a frame: the nearest single offset
    assert tau_range_frames((0.5, 0.6), interval_minutes=60) == (1, 1)
    with pytest.raises(ValueError, match="tau_range"):
        tau_range_frames((2.0, 1.0), interval_minutes=30)


def test_samples_stay_in_range_and_favour_small_offsets():
    rng = np.random.default_rng(0)
    draws = sample_tau(1, 6, rng, decay_rate=2.0, size=20_000)
    assert draws.min() >= 1
    assert draws.max() <= 6
    counts = np.bincount(draws, minlength=7)[1:]
    assert np.all(np.diff(counts) < 0)  # strictly decreasing frequency
    expected = tau_probabilities(1, 6, 2.0)
    assert np.allclose(counts / counts.sum(), expected, atol=0.02)
    assert expected[0] / expected[-1] == pytest.approx(np.exp(2.0))


def test_zero_decay_is_uniform_and_scalar_draw():
    p = tau_probabilities(2, 5, decay_rate=0.0)
    assert np.allclose(p, 0.25)
    value = sample_tau(3, 3, np.random.default_rng(1))
    assert isinstance(value, int)
    assert value == 3
