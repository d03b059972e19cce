"""Intensity normalization of numpy images."""

from __future__ import annotations

import numpy as np


def zscore(input_image, im_mean=None, im_std=None):
    """Z-score an image: ``(image - mean) / std``.

    Parameters
    ----------
    input_image : np.ndarray
    im_mean, im_std : float, optional
        Statistics to use; computed from the image when None.

    Returns
    -------
    np.ndarray
        The normalized image (float).
    """
    if im_mean is None:
        im_mean = np.nanmean(input_image)
    if im_std is None:
        im_std = np.nanstd(input_image)
    return (input_image - im_mean) / (im_std + np.finfo(np.float32).eps)


def unzscore(im_norm, zscore_median, zscore_iqr):
    """Undo a median/IQR normalization: ``image * iqr + median``.

    Parameters
    ----------
    im_norm : np.ndarray or torch.Tensor
    zscore_median : float
    zscore_iqr : float

    Returns
    -------
    Same type as ``im_norm``.
    """
    return im_norm * (zscore_iqr + np.finfo(np.float32).eps) + zscore_median


def hist_clipping(input_image, min_percentile=2, max_percentile=98):
    """Clip intensities to the given percentiles of the image.

    Parameters
    ----------
    input_image : np.ndarray
    min_percentile, max_percentile : float
        Percentiles in [0, 100].

    Returns
    -------
    np.ndarray
        The clipped image.
    """
    if not 0 <= min_percentile < max_percentile <= 100:
        raise ValueError(
            f"Need 0 <= min_percentile < max_percentile <= 100, got {min_percentile}, "
            f"{max_percentile}"
        )
    lo, hi = np.nanpercentile(input_image, [min_percentile, max_percentile])
    return np.clip(input_image, lo, hi)
