"""Batched random local pixel shuffling (Models Genesis style)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import torch
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched
from viscy_transforms._random import BatchedRandomizableMixin, check_prob, warn_shared_keys

__all__ = ["BatchedRandLocalPixelShufflingd"]

#: Most cubes shuffled per sample (0.1.0's limit).
MAX_PATCHES = 100


def patch_count(shape: tuple[int, int, int], patch_size: int, shuffle_prob: float) -> int:
    """Cubes shuffled per sample: ``shuffle_prob`` of the volume in cubes, at most 100."""
    depth, height, width = shape
    return min(MAX_PATCHES, int(shuffle_prob * depth * height * width / patch_size**3))


class BatchedRandLocalPixelShufflingd(
    BatchedRandomizableMixin, MapTransform, RandomizableTransform
):
    """Shuffle the voxels inside small random cubes.

    As in 0.1.0: each transformed sample gets ``min(100, int(shuffle_prob * Z * Y * X /
    patch_size**3))`` cubes of ``patch_size`` voxels per side (cut to the volume along an
    axis shorter than that), placed uniformly at random inside the volume (they may
    overlap; they are shuffled one after the other). Each cube's voxels get a uniformly
    random permutation, the same for all channels. Texture is destroyed locally, coarse
    structure kept.

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the (B, C, Z, Y, X) tensors to shuffle; keys share the cubes and
        permutations and must have the same spatial shape.
    patch_size : int
        Side of the cubes, in voxels.
    shuffle_prob : float
        Fraction of the volume (in cubes) to shuffle, up to 100 cubes.
    prob : float
        Probability, per sample, of applying the transform.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        patch_size: int = 3,
        shuffle_prob: float = 0.1,
        prob: float = 0.1,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        warn_shared_keys(type(self).__name__, self.keys)
        RandomizableTransform.__init__(self, check_prob(prob))
        if patch_size < 1:
            raise ValueError(f"patch_size must be a positive integer, got {patch_size}.")
        self.patch_size = int(patch_size)
        self.shuffle_prob = check_prob(shuffle_prob, "shuffle_prob")

    def randomize(  # type: ignore[override]
        self, img: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Which samples to shuffle, and per cube the (n, E) voxel indices and their order."""
        index = self._draw_apply(img.shape[0], self.prob).nonzero().squeeze(1)
        spatial = tuple(img.shape[2:])
        count = patch_count(spatial, self.patch_size, self.shuffle_prob)
        n = len(index)
        if n == 0 or count == 0:
            return index, []
        extent = [min(self.patch_size, s) for s in spatial]
        # (count, n, 3) corners, uniform over the positions where the cube fits
        room = torch.tensor([s - e + 1 for s, e in zip(spatial, extent, strict=True)])
        corners = (self._rand(count, n, 3) * room).long().minimum(room - 1)
        offsets = torch.stack(
            torch.meshgrid(*(torch.arange(e) for e in extent), indexing="ij"), -1
        ).reshape(-1, 3)
        strides = torch.tensor([spatial[1] * spatial[2], spatial[2], 1])
        flat = ((corners[:, :, None, :] + offsets) * strides).sum(-1).to(img.device)
        generator = self._device_generator(img.device)
        keys = torch.rand((count, n, offsets.shape[0]), generator=generator, device=img.device)
        orders = keys.argsort(dim=-1)
        return index, list(zip(flat, orders, strict=True))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        drawn = None
        for key in self.key_iterator(d):
            img = d[key]
            check_batched(img, name=f"'{key}'")
            if drawn is None:
                drawn = self.randomize(img)
                spatial = img.shape[2:]
            index, cubes = drawn
            if not cubes:
                continue
            if img.shape[2:] != spatial:
                raise ValueError(f"'{key}' shape {tuple(img.shape)} differs from the first key's.")
            device_index = index.to(img.device)
            sub = img.index_select(0, device_index)
            n, channels = sub.shape[:2]
            work = sub.reshape(n, channels, -1).clone()
            for flat, order in cubes:
                where = flat[:, None, :].expand(n, channels, -1)
                values = work.gather(2, where)
                values = values.gather(2, order[:, None, :].expand(n, channels, -1))
                work.scatter_(2, where, values)
            d[key] = img.index_copy(0, device_index, work.reshape(sub.shape))
        return d
