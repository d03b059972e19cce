"""Batched random 3D elastic deformation."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping

import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._affine import _MODES, _PADDING
from viscy_transforms._checks import check_batched
from viscy_transforms._random import BatchedRandomizableMixin, check_prob, normalize_range

__all__ = ["BatchedRand3DElasticd"]


def _box_mean(field: torch.Tensor, radii: torch.Tensor, axis: int) -> torch.Tensor:
    """Mean over ``2 r + 1`` neighbours along ``axis`` (zeros outside), ``r`` per sample."""
    n, size = field.shape[0], field.shape[axis]
    reach = int(radii.max())
    moved = field.movedim(axis, -1)
    padded = F.pad(moved, (reach + 1, reach))
    sums = padded.cumsum(-1)
    centre = torch.arange(size, device=field.device) + reach + 1
    shape = (n,) + (1,) * (moved.ndim - 2) + (size,)
    hi = (centre + radii[:, None]).reshape(shape).expand(*moved.shape)
    lo = (centre - radii[:, None] - 1).reshape(shape).expand(*moved.shape)
    out = sums.gather(-1, hi) - sums.gather(-1, lo)
    width = (2 * radii + 1).to(field.dtype).reshape((n,) + (1,) * (moved.ndim - 1))
    return (out / width).movedim(-1, axis)


class BatchedRand3DElasticd(BatchedRandomizableMixin, MapTransform, RandomizableTransform):
    """Random elastic deformation, with its own smooth displacement field per sample.

    As in 0.1.0: standard normal noise per voxel and axis is averaged over a cube of
    ``2 * int(3 * sigma) + 1`` voxels per side (zeros outside the volume) and multiplied by
    ``magnitude`` to give the displacement in voxels; ``sigma`` and ``magnitude`` are drawn
    uniformly per sample. The image is resampled with ``align_corners=True`` (so
    ``reflection`` mirrors about the edge voxels). The field is drawn on the data's device.
    All keys of one sample get the same deformation.

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the (B, C, Z, Y, X) tensors to deform.
    sigma_range : tuple[float, float]
        Range of the smoothing scale, in voxels: the averaging cube reaches ``int(3 * sigma)``
        voxels from its centre.
    magnitude_range : tuple[float, float]
        Range of the displacement magnitude, in voxels.
    prob : float
        Probability, per sample, of deforming.
    mode : str
        Interpolation: ``bilinear`` (trilinear) or ``nearest``.
    padding_mode : str
        ``zeros``, ``border`` or ``reflection``.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    #: Y/X read margin factor for readers of a larger window (duck-typed by viscy-data):
    #: sqrt(2) covers a 45 degree rotation without pixels from outside the patch.
    spatial_margin: float = math.sqrt(2)

    def __init__(
        self,
        keys: str | Iterable[str],
        sigma_range: tuple[float, float],
        magnitude_range: tuple[float, float],
        prob: float = 0.1,
        mode: str = "bilinear",
        padding_mode: str = "reflection",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_prob(prob))
        self.sigma_range = normalize_range(sigma_range, "sigma_range", symmetric=False)
        self.magnitude_range = normalize_range(magnitude_range, "magnitude_range", symmetric=False)
        if self.sigma_range[0] < 0 or self.magnitude_range[0] < 0:
            raise ValueError("sigma_range and magnitude_range must be non-negative.")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}.")
        if padding_mode not in _PADDING:
            raise ValueError(f"padding_mode must be one of {_PADDING}, got {padding_mode!r}.")
        self.mode = mode
        self.padding_mode = padding_mode

    def randomize(  # type: ignore[override]
        self, img: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Draw which samples to deform and their sampling grids (n, Z, Y, X, 3)."""
        index = self._draw_apply(img.shape[0], self.prob).nonzero().squeeze(1)
        n = len(index)
        sigmas = self._uniform(*self.sigma_range, n)
        magnitudes = self._uniform(*self.magnitude_range, n)
        if n == 0:
            return index, None
        spatial = tuple(img.shape[2:])
        dtype = img.dtype if img.dtype in (torch.float32, torch.float64) else torch.float32
        generator = self._device_generator(img.device)
        noise = torch.randn((n, 3, *spatial), generator=generator, device=img.device, dtype=dtype)
        radii = (3 * sigmas).floor().long().to(img.device)
        field = noise
        for axis in range(2, 5):
            field = _box_mean(field, radii, axis)
        # voxels -> normalized coordinates (align_corners=True); a singleton axis cannot move
        scale = torch.tensor(
            [2.0 / (s - 1) if s > 1 else 0.0 for s in spatial], dtype=torch.float64
        )
        scale = (magnitudes[:, None] * scale).to(img.device, dtype)
        field = field * scale[:, :, None, None, None]
        identity = torch.eye(3, 4, dtype=dtype, device=img.device).expand(n, 3, 4)
        grid = F.affine_grid(identity, [n, 1, *spatial], align_corners=True)
        # grid's last axis is (x, y, z); the field's channels are (z, y, x).
        return index, grid + field.flip(1).permute(0, 2, 3, 4, 1)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        drawn = None
        for key in self.key_iterator(d):
            img = d[key]
            check_batched(img, name=f"'{key}'")
            if drawn is None:
                drawn = self.randomize(img)
            index, grid = drawn
            if grid is None:
                continue
            if grid.shape[1:4] != img.shape[2:]:
                raise ValueError(
                    f"'{key}' spatial shape {tuple(img.shape[2:])} differs from the first key's "
                    f"{tuple(grid.shape[1:4])}."
                )
            device_index = index.to(img.device)
            sub = img.index_select(0, device_index)
            work = sub if sub.dtype == grid.dtype else sub.to(grid.dtype)
            moved = F.grid_sample(
                work, grid, mode=self.mode, padding_mode=self.padding_mode, align_corners=True
            )
            if not img.dtype.is_floating_point:
                moved = moved.round()
            d[key] = img.index_copy(0, device_index, moved.to(img.dtype))
        return d
