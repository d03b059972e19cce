"""Crop several tiles of a regular grid out of one sample."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Mapping

import torch
from monai.transforms import MapTransform, MultiSampleTrait

__all__ = ["TiledSpatialCropSamplesd"]


class TiledSpatialCropSamplesd(MapTransform, MultiSampleTrait):
    """Return ``num_samples`` non-overlapping tiles of ``roi_size`` from a (C, Z, Y, X) sample.

    A batch (B, C, Z, Y, X) is tiled the same way (the tiles cut the last three axes), as in
    0.1.0.

    The image is tiled with as many whole tiles as fit along each axis (the grid is centered,
    leftover margins are dropped); the first ``num_samples`` tiles in Z, Y, X raster order are
    returned, each as a copy of the sample dict with the keys cropped.

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the (C, Z, Y, X) or (B, C, Z, Y, X) tensors to tile; they must share the
        spatial shape.
    roi_size : tuple[int, int, int]
        Tile size (Z, Y, X).
    num_samples : int
        Number of tiles to return; more than fit raises ValueError.
    """

    def __init__(
        self, keys: str | Iterable[str], roi_size: tuple[int, int, int], num_samples: int
    ) -> None:
        super().__init__(keys)
        self.roi_size = tuple(int(r) for r in roi_size)
        if len(self.roi_size) != 3 or any(r < 1 for r in self.roi_size):
            raise ValueError(f"roi_size must be 3 positive ints (Z, Y, X), got {roi_size!r}.")
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}.")
        self.num_samples = int(num_samples)

    def _tile_starts(self, shape: tuple[int, ...]) -> list[tuple[int, int, int]]:
        if len(shape) not in (4, 5):
            raise ValueError(
                f"expected (C, Z, Y, X) or (B, C, Z, Y, X) tensors, got shape {shape}."
            )
        spatial = shape[-3:]
        counts = [s // r for s, r in zip(spatial, self.roi_size, strict=True)]
        if self.num_samples > (total := counts[0] * counts[1] * counts[2]):
            raise ValueError(
                f"{self.num_samples} tiles of {self.roi_size} requested but only {total} fit "
                f"in spatial shape {spatial}."
            )
        offsets = [(s - n * r) // 2 for s, n, r in zip(spatial, counts, self.roi_size, strict=True)]
        axes = [
            [o + i * r for i in range(n)]
            for o, n, r in zip(offsets, counts, self.roi_size, strict=True)
        ]
        return list(itertools.islice(itertools.product(*axes), self.num_samples))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> list[dict[Hashable, torch.Tensor]]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        starts = self._tile_starts(tuple(d[keys[0]].shape))
        rz, ry, rx = self.roi_size
        samples = []
        for z, y, x in starts:
            sample = dict(d)
            for key in keys:
                sample[key] = d[key][..., z : z + rz, y : y + ry, x : x + rx]
            samples.append(sample)
        return samples
