"""Batched random 3D affine transforms (rotate, shear, scale, translate) via grid_sample."""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched
from viscy_transforms._random import BatchedRandomizableMixin, check_prob

__all__ = ["BatchedRandAffined", "affine_to_theta", "resample"]

_MODES = ("bilinear", "nearest")
_PADDING = ("zeros", "border", "reflection")
_MAX_SAFE_TRIES = 10

RangeSpec = Sequence[tuple[float, float] | float] | float | None


def _ranges(value: RangeSpec, n: int, name: str) -> list[tuple[float, float]]:
    """MONAI-style ranges: ``r`` -> ``(-r, r)``; a single number applies to the first entry."""
    if value is None:
        return [(0.0, 0.0)] * n
    entries = [value] if isinstance(value, int | float) else list(value)
    if len(entries) > n:
        raise ValueError(f"{name} has {len(entries)} entries, at most {n} are allowed.")
    out = []
    for entry in entries:
        if isinstance(entry, int | float):
            out.append((-abs(float(entry)), abs(float(entry))))
        else:
            pair = tuple(float(v) for v in entry)
            if len(pair) != 2 or pair[0] > pair[1]:
                raise ValueError(
                    f"{name} entries must be numbers or (min, max) pairs, got {entry!r}."
                )
            out.append(pair)
    return out + [(0.0, 0.0)] * (n - len(out))


def _scale_ranges(value: Sequence | None) -> list[tuple[float, float]]:
    """Scale factor ranges for (Z, Y, X); a single (min, max) pair applies to all axes."""
    if value is None:
        return [(1.0, 1.0)] * 3
    entries = list(value)
    if len(entries) == 2 and all(isinstance(v, int | float) for v in entries):
        entries = [tuple(entries)] * 3
    if len(entries) != 3:
        raise ValueError(
            f"scale_range must be a (min, max) pair or three pairs for (Z, Y, X), got {value!r}."
        )
    out = []
    for entry in entries:
        pair = (float(entry), float(entry)) if isinstance(entry, int | float) else tuple(entry)
        if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
            raise ValueError(
                f"scale_range entries are positive (min, max) factor pairs, got {entry!r}."
            )
        out.append((float(pair[0]), float(pair[1])))
    return out


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """(n, 3) angles about the Z, Y, X axes -> (n, 3, 3) rotation in (z, y, x) coordinates."""
    n = angles.shape[0]
    mats = []
    for axis in range(3):
        cos, sin = angles[:, axis].cos(), angles[:, axis].sin()
        a, b = [i for i in range(3) if i != axis]
        mat = torch.eye(3, dtype=angles.dtype).repeat(n, 1, 1)
        mat[:, a, a], mat[:, a, b], mat[:, b, a], mat[:, b, b] = cos, -sin, sin, cos
        mats.append(mat)
    return mats[0] @ mats[1] @ mats[2]


def affine_to_theta(
    linear: torch.Tensor, translation: torch.Tensor, spatial: Sequence[int]
) -> torch.Tensor:
    """Forward affine in centered voxel coordinates -> ``affine_grid`` theta.

    Parameters
    ----------
    linear : torch.Tensor
        (n, 3, 3) matrices acting on centered (z, y, x) voxel coordinates.
    translation : torch.Tensor
        (n, 3) shifts in voxels (z, y, x).
    spatial : Sequence[int]
        Spatial shape (Z, Y, X).

    Returns
    -------
    torch.Tensor
        (n, 3, 4) theta mapping output to input normalized coordinates in (x, y, z) order.
    """
    inv = torch.linalg.inv(linear)
    to_norm = torch.diag(2.0 / torch.tensor(spatial, dtype=linear.dtype))
    from_norm = torch.diag(torch.tensor(spatial, dtype=linear.dtype) / 2.0)
    mat = to_norm @ inv @ from_norm
    offset = -(to_norm @ inv @ translation.unsqueeze(-1)).squeeze(-1)
    # affine_grid orders coordinates (x, y, z): reverse rows and columns.
    mat = mat.flip(-1).flip(-2)
    offset = offset.flip(-1)
    return torch.cat([mat, offset.unsqueeze(-1)], dim=-1)


def resample(img: torch.Tensor, theta: torch.Tensor, mode: str, padding_mode: str) -> torch.Tensor:
    """Resample (n, C, Z, Y, X) ``img`` with (n, 3, 4) ``theta``, keeping device and dtype."""
    dtype = img.dtype
    work = img if dtype in (torch.float32, torch.float64) else img.float()
    grid = F.affine_grid(
        theta.to(device=img.device, dtype=work.dtype), list(work.shape), align_corners=False
    )
    out = F.grid_sample(work, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    if not dtype.is_floating_point:
        out = out.round()
    return out.to(dtype)


class BatchedRandAffined(BatchedRandomizableMixin, MapTransform, RandomizableTransform):
    """Random 3D affine transform with its own parameters for each sample of a batch.

    The transform is built in voxel coordinates centered on the volume (so rotations are
    undistorted on anisotropic shapes), as scale, then shear, then rotation about Z, Y, X,
    then translation, and applied with ``torch.nn.functional.affine_grid``/``grid_sample``.
    All keys of one sample get the same transform.

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the (B, C, Z, Y, X) tensors to transform.
    prob : float
        Probability, per sample, of transforming.
    rotate_range : Sequence[tuple[float, float] | float] | float | None
        Rotation ranges (radians) about the Z, Y, X axes (MONAI convention: ``r`` means
        ``(-r, r)``; a single number applies to Z only, i.e. rotation in the YX plane).
    shear_range : Sequence[tuple[float, float] | float] | float | None
        Either 3 entries, one per plane: [0] shears X along Y (YX plane), [1] shears X along Z
        and [2] Y along Z (tilting the stack); or 6 entries, the off-diagonal terms of the
        (z, y, x) matrix in MONAI's order.
    translate_range : Sequence[tuple[float, float] | float] | float | None
        Translation ranges along Z, Y, X as fractions of the image size (0.1.0 semantics:
        0.1 moves by up to a tenth of the size).
    scale_range : tuple[float, float] | Sequence[tuple[float, float]] | None
        Multiplicative zoom factor ranges (1 = unchanged): one (min, max) pair for all axes
        or one per axis (Z, Y, X).
    isotropic_scale : bool
        Draw one zoom factor (from the first range) for all axes.
    scale_z_shear : bool
        Express shears involving Z relative to the volume's aspect ratio (normalized
        coordinates): a shear ``s`` tilts the stack by ``s`` of its width over its full depth,
        so small values matter on thin stacks. If False, shears are in voxel units.
    mode : str
        Interpolation: ``bilinear`` (trilinear) or ``nearest``.
    padding_mode : str
        ``zeros``, ``border`` or ``reflection``.
    safe_crop_size : Sequence[int] | None
        If set, redraw (up to 10 times, then leave the sample unchanged) parameters whose
        transform would bring padding into the central crop of this size (Z, Y, X).
    safe_crop_coverage : float
        Fraction of the safe crop (checked on a 5x5x5 grid of points) that must map inside
        the input.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    #: Y/X read margin factor for readers of a larger window (duck-typed by viscy-data):
    #: sqrt(2) covers a 45 degree rotation without pixels from outside the patch.
    spatial_margin: float = math.sqrt(2)

    def __init__(
        self,
        keys: str | Iterable[str],
        prob: float = 0.1,
        rotate_range: Sequence[tuple[float, float] | float] | float | None = None,
        shear_range: Sequence[tuple[float, float] | float] | float | None = None,
        translate_range: Sequence[tuple[float, float] | float] | float | None = None,
        scale_range: tuple[float, float] | Sequence[tuple[float, float]] | None = None,
        isotropic_scale: bool = False,
        scale_z_shear: bool = True,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        safe_crop_size: Sequence[int] | None = None,
        safe_crop_coverage: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_prob(prob))
        self.rotate_range = _ranges(rotate_range, 3, "rotate_range")
        n_shear = (
            6
            if shear_range is not None
            and not isinstance(shear_range, int | float)
            and len(shear_range) > 3
            else 3
        )
        self.shear_range = _ranges(shear_range, n_shear, "shear_range")
        self.translate_range = _ranges(translate_range, 3, "translate_range")
        flat_scale = scale_range is None or (
            len(scale_range) == 2 and all(isinstance(v, int | float) for v in scale_range)
        )
        if isotropic_scale and not flat_scale:
            raise ValueError(
                "isotropic_scale=True cannot be combined with per-axis scale_range; use a flat "
                f"(min, max) pair, got scale_range={scale_range!r}."
            )
        if shear_range is not None and any(lo or hi for lo, hi in self.shear_range):
            warnings.warn(
                "BatchedRandAffined shear_range: 0.1.0 reads shear angles in degrees; this "
                "version reads shear factors (see COMPATIBILITY.md, viscy-transforms). Convert "
                "0.1.0 values with tan(radians(angle)).",
                UserWarning,
                stacklevel=2,
            )
        self.scale_range = _scale_ranges(scale_range)
        self.isotropic_scale = isotropic_scale
        self.scale_z_shear = scale_z_shear
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}.")
        if padding_mode not in _PADDING:
            raise ValueError(f"padding_mode must be one of {_PADDING}, got {padding_mode!r}.")
        self.mode = mode
        self.padding_mode = padding_mode
        self.safe_crop_size = (
            None if safe_crop_size is None else tuple(int(s) for s in safe_crop_size)
        )
        if self.safe_crop_size is not None and len(self.safe_crop_size) != 3:
            raise ValueError(
                f"safe_crop_size must have 3 entries (Z, Y, X), got {safe_crop_size!r}."
            )
        self.safe_crop_coverage = check_prob(safe_crop_coverage, "safe_crop_coverage")

    def _draw(self, n: int, spatial: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` forward affines: (n, 3, 3) linear parts and (n, 3) translations."""

        def uniform(ranges: list[tuple[float, float]]) -> torch.Tensor:
            return torch.stack([self._uniform(lo, hi, n) for lo, hi in ranges], dim=1)

        if self.isotropic_scale:
            scales = uniform(self.scale_range[:1]).expand(n, 3)
        else:
            scales = uniform(self.scale_range)
        shear = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
        values = uniform(self.shear_range)
        if values.shape[1] == 3:
            entries = [(2, 1), (2, 0), (1, 0)]  # (displaced axis, along axis) per plane
        else:
            entries = [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
        for column, (a, b) in enumerate(entries):
            factor = spatial[a] / spatial[b] if self.scale_z_shear and 0 in (a, b) else 1.0
            shear[:, a, b] = values[:, column] * factor
        linear = _rotation(uniform(self.rotate_range)) @ shear @ torch.diag_embed(scales)
        # 0.1.0: translate_range is a fraction of the image size along each axis
        size = torch.tensor(spatial, dtype=torch.float64)
        return linear, uniform(self.translate_range) * size

    def _coverage(
        self, linear: torch.Tensor, translation: torch.Tensor, spatial: Sequence[int]
    ) -> torch.Tensor:
        """Fraction of the safe crop's check points that map inside the input, per sample."""
        axes = [
            torch.linspace(-(c - 1) / 2, (c - 1) / 2, 5, dtype=torch.float64)
            for c in self.safe_crop_size
        ]
        points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
        source = torch.linalg.solve(
            linear.unsqueeze(1), (points.unsqueeze(0) - translation.unsqueeze(1)).unsqueeze(-1)
        ).squeeze(-1)
        half = (torch.tensor(spatial, dtype=torch.float64) - 1) / 2 + 1e-6
        return (source.abs() <= half).all(dim=-1).double().mean(dim=-1)

    def randomize(
        self, batch_size: int, spatial: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """Draw which samples to transform and their ``affine_grid`` thetas.

        Returns
        -------
        tuple[torch.Tensor, torch.Tensor]
            Indices (n,) of the transformed samples and their (n, 3, 4) thetas.
        """
        index = self._draw_apply(batch_size, self.prob).nonzero().squeeze(1)
        linear, translation = self._draw(len(index), spatial)
        if self.safe_crop_size is not None and len(index):
            if any(c > s for c, s in zip(self.safe_crop_size, spatial, strict=True)):
                raise ValueError(
                    f"safe_crop_size {self.safe_crop_size} is larger than the image "
                    f"{tuple(spatial)}."
                )
            for _ in range(_MAX_SAFE_TRIES):
                bad = self._coverage(linear, translation, spatial) < self.safe_crop_coverage - 1e-9
                if not bad.any():
                    break
                new_linear, new_translation = self._draw(int(bad.sum()), spatial)
                linear[bad], translation[bad] = new_linear, new_translation
            else:
                keep = (
                    self._coverage(linear, translation, spatial) >= self.safe_crop_coverage - 1e-9
                )
                index, linear, translation = index[keep], linear[keep], translation[keep]
        return index, affine_to_theta(linear, translation, spatial)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        drawn = None
        for key in self.key_iterator(d):
            img = d[key]
            check_batched(img, name=f"'{key}'")
            if drawn is None:
                drawn = self.randomize(img.shape[0], tuple(img.shape[2:]))
            index, theta = drawn
            if len(index) == 0:
                continue
            if len(index) == img.shape[0]:
                d[key] = resample(img, theta, self.mode, self.padding_mode)
                continue
            device_index = index.to(img.device)
            moved = resample(img.index_select(0, device_index), theta, self.mode, self.padding_mode)
            d[key] = img.index_copy(0, device_index, moved)
        return d
