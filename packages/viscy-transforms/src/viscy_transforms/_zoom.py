"""Batched zoom with ``torch.nn.functional.interpolate``."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, Transform

from viscy_transforms._checks import check_batched

__all__ = ["BatchedZoom", "BatchedZoomd"]

InterpolationMode = Literal[
    "nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area"
]


class BatchedZoom(Transform):
    """Resize a (B, C, Z, Y, X) batch by ``scale_factor`` with ``F.interpolate``.

    ``linear`` and ``bilinear`` mean ``trilinear`` on 5-D inputs. Floating inputs keep their
    dtype; integer inputs are interpolated in float32 and rounded back.

    Parameters
    ----------
    scale_factor : float | tuple[float, float, float]
        Zoom factor, for all axes or per axis (Z, Y, X).
    mode : str
        Interpolation mode of ``F.interpolate``.
    align_corners, recompute_scale_factor, antialias
        Passed to ``F.interpolate``.
    """

    #: Y/X read margin factor for readers of a larger window (duck-typed by viscy-data):
    #: sqrt(2) covers a 45 degree rotation without pixels from outside the patch.
    spatial_margin: float = math.sqrt(2)

    def __init__(
        self,
        scale_factor: float | tuple[float, float, float],
        mode: InterpolationMode,
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
        antialias: bool = False,
    ) -> None:
        factors = (scale_factor,) if isinstance(scale_factor, int | float) else tuple(scale_factor)
        if any(f <= 0 for f in factors):
            raise ValueError(f"scale_factor must be positive, got {scale_factor!r}.")
        if mode not in InterpolationMode.__args__:
            raise ValueError(f"mode must be one of {InterpolationMode.__args__}, got {mode!r}.")
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor
        self.antialias = antialias

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        check_batched(img)
        mode = "trilinear" if self.mode in ("linear", "bilinear") else self.mode
        if mode == "bicubic" or self.antialias:
            raise ValueError(f"mode {self.mode!r} / antialias are not available for 3-D zoom.")
        scale = self.scale_factor
        if not isinstance(scale, int | float):
            scale = tuple(float(s) for s in scale)
        work = img if img.is_floating_point() else img.float()
        out = F.interpolate(
            work,
            scale_factor=scale,
            mode=mode,
            align_corners=self.align_corners if mode == "trilinear" else None,
            recompute_scale_factor=self.recompute_scale_factor,
        )
        if not img.is_floating_point():
            out = out.round()
        return out.to(img.dtype)


class BatchedZoomd(MapTransform):
    """Dictionary version of :class:`BatchedZoom`.

    Parameters
    ----------
    keys : Sequence[str]
        Keys of the batch dict to resize.
    scale_factor : float or tuple[float, float, float]
        Zoom factor, for all axes or per axis (Z, Y, X).
    mode : InterpolationMode
        Interpolation mode of ``F.interpolate``.
    align_corners : bool or None
        Passed to ``F.interpolate`` (default None).
    recompute_scale_factor : bool or None
        Passed to ``F.interpolate`` (default None).
    antialias : bool
        Passed to ``F.interpolate`` (default False).
    """

    #: Y/X read margin factor for readers of a larger window (duck-typed by viscy-data):
    #: sqrt(2) covers a 45 degree rotation without pixels from outside the patch.
    spatial_margin: float = math.sqrt(2)

    def __init__(
        self,
        keys: Sequence[str],
        scale_factor: float | tuple[float, float, float],
        mode: InterpolationMode,
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
        antialias: bool = False,
    ) -> None:
        super().__init__(keys)
        self.transform = BatchedZoom(
            scale_factor, mode, align_corners, recompute_scale_factor, antialias
        )

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d
