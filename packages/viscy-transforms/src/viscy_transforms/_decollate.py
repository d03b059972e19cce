"""Split a batch back into a list of samples."""

from __future__ import annotations

from typing import Any

from monai.data import decollate_batch
from monai.transforms import Transform

__all__ = ["Decollate"]


class Decollate(Transform):
    """Turn a batch (tensor, or dict of batched values) into a list of per-sample items.

    Parameters
    ----------
    detach : bool
        Detach tensors and turn 0-d tensors into python numbers.
    pad_batch : bool
        Pad shorter batch entries (e.g. lists) with ``fill_value`` to the batch size.
    fill_value : Any
        Value used for padding.
    """

    def __init__(self, detach: bool = True, pad_batch: bool = True, fill_value: Any = None) -> None:
        self.detach = detach
        self.pad_batch = pad_batch
        self.fill_value = fill_value

    def __call__(self, data: Any) -> list:
        return decollate_batch(
            data, detach=self.detach, pad=self.pad_batch, fill_value=self.fill_value
        )
