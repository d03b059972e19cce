"""Batched random local pixel shuffling (Models Genesis style)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import torch
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched
from viscy_transforms._random import BatchedRandomizableMixin, check_prob

__all__ = ["BatchedRandLocalPixelShufflingd"]


class BatchedRandLocalPixelShufflingd(
    BatchedRandomizableMixin, MapTransform, RandomizableTransform
):
    """Shuffle pixels within small YX patches, slice by slice.

    Each Y/X plane is tiled with ``patch_size`` x ``patch_size`` patches (a remainder at the
    far edges stays as is); each patch is shuffled with probability ``shuffle_prob``, with the
    same permutation for all channels. Texture is destroyed locally, coarse structure kept.

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the (B, C, Z, Y, X) tensors to shuffle; keys share the permutations and must
        have the same shape.
    patch_size : int
        Side of the square patches, in pixels.
    shuffle_prob : float
        Probability of shuffling one patch.
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
        RandomizableTransform.__init__(self, check_prob(prob))
        if patch_size < 1:
            raise ValueError(f"patch_size must be a positive integer, got {patch_size}.")
        self.patch_size = int(patch_size)
        self.shuffle_prob = check_prob(shuffle_prob, "shuffle_prob")

    def randomize(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:  # type: ignore[override]
        """Draw which samples to shuffle and the permutation of every patch (on the device)."""
        index = self._draw_apply(img.shape[0], self.prob).nonzero().squeeze(1)
        p = self.patch_size
        _, _, depth, height, width = img.shape
        if len(index) == 0 or height < p or width < p:
            return index, None
        shape = (len(index), 1, depth, height // p, width // p)
        generator = self._device_generator(img.device)
        keys = torch.rand((*shape, p * p), generator=generator, device=img.device)
        shuffled = torch.rand(shape, generator=generator, device=img.device) < self.shuffle_prob
        identity = torch.arange(p * p, device=img.device, dtype=keys.dtype)
        keys = torch.where(shuffled[..., None], keys, identity)
        return index, keys.argsort(dim=-1)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        drawn = None
        p = self.patch_size
        for key in self.key_iterator(d):
            img = d[key]
            check_batched(img, name=f"'{key}'")
            if drawn is None:
                drawn = self.randomize(img)
            index, order = drawn
            if order is None:
                continue
            n, _, depth, ny, nx, _ = order.shape
            if img.shape[2] != depth or img.shape[3] // p != ny or img.shape[4] // p != nx:
                raise ValueError(f"'{key}' shape {tuple(img.shape)} differs from the first key's.")
            device_index = index.to(img.device)
            sub = img.index_select(0, device_index)
            channels = sub.shape[1]
            core = sub[..., : ny * p, : nx * p]
            patches = (
                core.reshape(n, channels, depth, ny, p, nx, p)
                .permute(0, 1, 2, 3, 5, 4, 6)
                .reshape(n, channels, depth, ny, nx, p * p)
            )
            patches = patches.gather(-1, order.expand(n, channels, depth, ny, nx, p * p))
            core = (
                patches.reshape(n, channels, depth, ny, nx, p, p)
                .permute(0, 1, 2, 3, 5, 4, 6)
                .reshape(n, channels, depth, ny * p, nx * p)
            )
            sub = sub.clone()
            sub[..., : ny * p, : nx * p] = core
            d[key] = img.index_copy(0, device_index, sub)
        return d
