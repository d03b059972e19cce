"""Batched random 3D elastic deformation."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping

import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._affine import _MODES, _PADDING
from viscy_transforms._checks import check_batched
from viscy_transforms._gaussian import gaussian_blur3d
from viscy_transforms._random import BatchedRandomizableMixin, check_prob, normalize_range

__all__ = ["BatchedRand3DElasticd"]


class BatchedRand3DElasticd(BatchedRandomizableMixin, MapTransform, RandomizableTransform):
    """Random elastic deformation, with its own smooth displacement field per sample.

    As MONAI ``Rand3DElastic``: uniform noise in [-1, 1] per voxel and axis is smoothed with
    a Gaussian of ``sigma`` voxels and multiplied by ``magnitude`` voxels to give the
    displacement; both are drawn per sample. The field is drawn on the data's device.
    All keys of one sample get the same deformation.

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the (B, C, Z, Y, X) tensors to deform.
    sigma_range : tuple[float, float]
        Range of the smoothing sigma, in voxels.
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
        spatial = img.shape[2:]
        dtype = img.dtype if img.dtype in (torch.float32, torch.float64) else torch.float32
        generator = self._device_generator(img.device)
        noise = torch.rand((n, 3, *spatial), generator=generator, device=img.device, dtype=dtype)
        field = gaussian_blur3d(noise * 2 - 1, sigmas[:, None].expand(n, 3))
        scale = torch.tensor([2.0 / s for s in spatial], dtype=torch.float64)
        field = field * (magnitudes[:, None] * scale).to(img.device, dtype)[:, :, None, None, None]
        identity = torch.eye(3, 4, dtype=dtype, device=img.device).expand(n, 3, 4)
        grid = F.affine_grid(identity, [n, 1, *spatial], align_corners=False)
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
                work, grid, mode=self.mode, padding_mode=self.padding_mode, align_corners=False
            )
            if not img.dtype.is_floating_point:
                moved = moved.round()
            d[key] = img.index_copy(0, device_index, moved.to(img.dtype))
        return d
