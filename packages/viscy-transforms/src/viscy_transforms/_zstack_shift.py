"""Batched random shift of the Z stack by whole slices."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import torch
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched
from viscy_transforms._random import BatchedRandomizableMixin, check_prob

__all__ = ["BatchedRandZStackShiftd"]

_MODES = ("constant", "replicate", "circular")


class BatchedRandZStackShiftd(BatchedRandomizableMixin, MapTransform, RandomizableTransform):
    """Shift each sample's Z stack by a random whole number of slices (a focus offset).

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the (B, C, Z, Y, X) tensors to shift; the keys of a sample shift together.
    max_shift : int
        Shifts are drawn uniformly from ``[-max_shift, max_shift]``.
    prob : float
        Probability, per sample, of shifting.
    mode : str
        Filling of the vacated slices: ``constant`` (``cval``), ``replicate`` (edge slice) or
        ``circular`` (wrap around).
    cval : float
        Fill value for ``constant``.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        max_shift: int = 3,
        prob: float = 0.1,
        mode: str = "constant",
        cval: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_prob(prob))
        if max_shift < 0:
            raise ValueError(f"max_shift must be non-negative, got {max_shift}.")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}.")
        self.max_shift = int(max_shift)
        self.mode = mode
        self.cval = cval

    def randomize(self, batch_size: int) -> torch.Tensor:  # type: ignore[override]
        """Per-sample shifts in slices (0 where the transform does not apply)."""
        apply = self._draw_apply(batch_size, self.prob)
        shifts = torch.randint(
            -self.max_shift, self.max_shift + 1, (batch_size,), generator=self.generator
        )
        return shifts * apply

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        shifts = None
        for key in self.key_iterator(d):
            img = d[key]
            check_batched(img, name=f"'{key}'")
            if shifts is None:
                shifts = self.randomize(img.shape[0])
            if not shifts.any():
                continue
            batch, _, depth = img.shape[:3]
            # Output slice z reads input slice z - shift.
            source = torch.arange(depth)[None, :] - shifts[:, None]
            valid = (source >= 0) & (source < depth)
            source = source % depth if self.mode == "circular" else source.clamp(0, depth - 1)
            index = source.to(img.device).view(batch, 1, depth, 1, 1).expand_as(img)
            out = img.gather(2, index)
            if self.mode == "constant":
                mask = valid.to(img.device).view(batch, 1, depth, 1, 1)
                out = out.masked_fill(~mask, self.cval)
            d[key] = out
        return d
