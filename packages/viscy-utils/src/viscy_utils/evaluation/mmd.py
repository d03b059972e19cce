"""Maximum mean discrepancy between two sets of embeddings, with a permutation test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viscy_utils.evaluation._split import as_2d_float


@dataclass(frozen=True)
class MMDResult:
    """Kernel two-sample test of two embedding sets.

    Attributes
    ----------
    mmd2 : float
        Unbiased estimate of the squared MMD (Gaussian kernel); ~0 when both sets come
        from one distribution, and may then be slightly negative.
    p_value : float
        Fraction of label permutations with an MMD at least as large (add-one corrected,
        so never 0).
    bandwidth : float
        Kernel width (median pairwise distance of the pooled samples).
    n_x, n_y : int
        Samples of each set used (after subsampling to ``max_samples``).
    n_permutations : int
    """

    mmd2: float
    p_value: float
    bandwidth: float
    n_x: int
    n_y: int
    n_permutations: int


def _mmd2(k: np.ndarray, in_x: np.ndarray) -> float:
    in_y = ~in_x
    n, m = int(in_x.sum()), int(in_y.sum())
    kxx = k[np.ix_(in_x, in_x)]
    kyy = k[np.ix_(in_y, in_y)]
    kxy = k[np.ix_(in_x, in_y)]
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def mmd_permutation_test(
    x,
    y,
    n_permutations: int = 200,
    max_samples: int = 500,
    bandwidth: float | None = None,
    seed: int = 0,
) -> MMDResult:
    """Squared MMD between ``x`` and ``y`` and its permutation p-value.

    Parameters
    ----------
    x, y : array-like, shape (n, d) and (m, d)
        Embeddings of the two groups (e.g. uninfected and infected cells).
    n_permutations : int
        Random relabellings of the pooled samples for the null distribution.
    max_samples : int
        Each set is randomly subsampled to at most this many rows (the kernel matrix is
        ``(n + m)^2``).
    bandwidth : float, optional
        Gaussian kernel width; the median pairwise distance by default.
    seed : int

    Returns
    -------
    MMDResult
    """
    a, b = as_2d_float(x, "x"), as_2d_float(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y have different widths: {a.shape[1]} and {b.shape[1]}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"MMD needs at least 2 samples per set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    if len(a) > max_samples:
        a = a[rng.choice(len(a), max_samples, replace=False)]
    if len(b) > max_samples:
        b = b[rng.choice(len(b), max_samples, replace=False)]
    pooled = np.concatenate([a, b])
    sq = np.sum(pooled**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    if bandwidth is None:
        upper = np.sqrt(d2[np.triu_indices(len(pooled), k=1)])
        bandwidth = float(np.median(upper[upper > 0])) if np.any(upper > 0) else 1.0
    k = np.exp(-d2 / (2.0 * bandwidth**2))
    in_x = np.zeros(len(pooled), dtype=bool)
    in_x[: len(a)] = True
    observed = _mmd2(k, in_x)
    exceed = 0
    for _ in range(n_permutations):
        if _mmd2(k, rng.permutation(in_x)) >= observed:
            exceed += 1
    p_value = (exceed + 1) / (n_permutations + 1)
    return MMDResult(observed, p_value, float(bandwidth), len(a), len(b), n_permutations)
