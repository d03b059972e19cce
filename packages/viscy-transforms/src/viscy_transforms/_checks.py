"""Argument and shape checks shared by the transforms."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["check_batched", "compute_dtype", "spatial_triple"]


def check_batched(img: torch.Tensor, name: str = "input", ndim: int | None = 5) -> None:
    """Raise unless ``img`` is a tensor with ``ndim`` dims (B, C, Z, Y, X); None: at least 2."""
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(img).__name__}.")
    if ndim is None:
        if img.ndim < 2:
            raise ValueError(
                f"{name} must be a batched tensor (B, C, ...), got shape {tuple(img.shape)}."
            )
        return
    if img.ndim != ndim:
        layout = "(B, C, Z, Y, X)" if ndim == 5 else f"{ndim} dimensions"
        raise ValueError(f"{name} must be a batched tensor {layout}, got shape {tuple(img.shape)}.")


def compute_dtype(img: torch.Tensor) -> torch.dtype:
    """Floating dtype to compute in: the input's if floating, float32 otherwise."""
    return img.dtype if img.is_floating_point() else torch.float32


def spatial_triple(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    """Expand an int or a 3-sequence of ints to a (Z, Y, X) tuple."""
    if isinstance(value, int):
        return (value, value, value)
    values = tuple(int(v) for v in value)
    if len(values) != 3:
        raise ValueError(f"{name} must be an int or 3 ints (Z, Y, X), got {value!r}.")
    return values
