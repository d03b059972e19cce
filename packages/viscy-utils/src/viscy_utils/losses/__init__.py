"""Reconstruction losses for virtual staining: :class:`MixedLoss` and :class:`SpotlightLoss`."""

from viscy_utils.losses.mixed_loss import MixedLoss, ms_ssim_25d
from viscy_utils.losses.spotlight import SpotlightLoss

__all__ = ["MixedLoss", "SpotlightLoss", "ms_ssim_25d"]
