"""Conversions between torch tensors and numpy arrays."""

from __future__ import annotations

import numpy as np
import torch


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Detach a tensor, move it to CPU and return it as a numpy array.

    bfloat16 (which numpy lacks) is converted to float32.

    Parameters
    ----------
    t : torch.Tensor
        Tensor on any device; it is detached, so gradients are not tracked.
    """
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()
