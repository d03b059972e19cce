"""Whole-FOV prediction: blended sliding-window tiles and test-time augmentation.

A FOV larger than the network's input is cut into overlapping Y/X tiles. Each tile's
prediction is weighted by a profile that is zero for the outer quarter of the overlap at
every edge it shares with a neighbour, rises as a raised cosine over the middle half and is
one elsewhere (and up to the FOV border); overlapping predictions are averaged with these
weights. A network whose receptive field reaches less than a quarter of the overlap past a
pixel therefore gives exactly its one-shot prediction of the whole FOV, and any network
gives a prediction without visible tile borders.

Stacks deeper than the network's input depth are cut into Z windows: for a network whose
output is as deep as its input (3D), overlapping windows are averaged; for one that
predicts fewer slices (2.5D, e.g. the centre slice), windows move one slice at a time and
the output covers the slices that some window centres on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

__all__ = ["TTA_TRANSFORMS", "predict_sliding_window", "tile_starts", "tile_weights"]


def _rot(k: int) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    return (lambda x: torch.rot90(x, k, (-2, -1))), (lambda x: torch.rot90(x, -k, (-2, -1)))


def _flip(dims: tuple[int, ...]) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    return (lambda x: torch.flip(x, dims)), (lambda x: torch.flip(x, dims))


def _transpose() -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    return (lambda x: x.transpose(-2, -1)), (lambda x: x.transpose(-2, -1))


#: Test-time augmentations of the Y/X plane: name -> (forward, inverse).
TTA_TRANSFORMS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "identity": ((lambda x: x), (lambda x: x)),
    "flip_y": _flip((-2,)),
    "flip_x": _flip((-1,)),
    "flip_yx": _flip((-2, -1)),
    "rot90": _rot(1),
    "rot180": _rot(2),
    "rot270": _rot(3),
    "transpose": _transpose(),
}
#: ``tta=["all"]`` means the eight symmetries of the square.
_ALL = ("identity", "flip_y", "flip_x", "rot90", "rot180", "rot270", "transpose", "flip_yx")


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """First index of every tile along one axis of ``size`` pixels.

    Tiles step by ``tile - overlap``; the last one ends at the border (overlapping its
    neighbour by at least ``overlap``). One tile when ``size <= tile``.
    """
    if tile <= 0:
        raise ValueError(f"tile size must be positive, got {tile}")
    if size <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile={tile}), got {overlap}")
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def tile_weights(tile: int, overlap: int, first: bool, last: bool) -> Tensor:
    """Blending profile (length ``tile``) of one tile along one axis.

    ``first``/``last``: the tile touches the start/end of the axis (no neighbour there,
    weight one up to that border).
    """
    weights = torch.ones(tile, dtype=torch.float64)
    margin = overlap // 4
    ramp_len = overlap - 2 * margin
    if ramp_len > 0:
        i = torch.arange(ramp_len, dtype=torch.float64)
        ramp = 0.5 - 0.5 * torch.cos(math.pi * (i + 0.5) / ramp_len)
    else:
        ramp = torch.empty(0, dtype=torch.float64)
    if not first and overlap > 0:
        weights[:margin] = 0.0
        weights[margin : margin + ramp_len] = ramp
    if not last and overlap > 0:
        weights[tile - margin :] = 0.0
        weights[tile - margin - ramp_len : tile - margin] = ramp.flip(0)
    return weights


def _pad_to(x: Tensor, size_y: int, size_x: int) -> Tensor:
    pad_y, pad_x = size_y - x.shape[-2], size_x - x.shape[-1]
    if pad_y <= 0 and pad_x <= 0:
        return x
    pad = (0, max(pad_x, 0), 0, max(pad_y, 0))
    mode = "reflect" if pad_y < x.shape[-2] and pad_x < x.shape[-1] else "replicate"
    # reflect/replicate of 5-D tensors pads the last three dims: fold Z into channels
    flat = x.reshape(x.shape[0], -1, *x.shape[-2:])
    return torch.nn.functional.pad(flat, pad, mode=mode).reshape(
        *x.shape[:-2], flat.shape[-2] + max(pad_y, 0), flat.shape[-1] + max(pad_x, 0)
    )


def _with_tta(
    forward: Callable[[Tensor], Tensor],
    x: Tensor,
    tta: Sequence[str],
    reduction: Literal["mean", "median"],
) -> Tensor:
    if not tta:
        return forward(x)
    outs = []
    for name in tta:
        fwd, inv = TTA_TRANSFORMS[name]
        outs.append(inv(forward(fwd(x))))
    if len(outs) == 1:
        return outs[0]
    stacked = torch.stack(outs)
    return stacked.mean(0) if reduction == "mean" else stacked.median(0).values


def _resolve_tta(tta: Sequence[str] | None) -> tuple[str, ...]:
    names = tuple(tta or ())
    if "all" in names:
        return _ALL
    unknown = [n for n in names if n not in TTA_TRANSFORMS]
    if unknown:
        raise ValueError(
            f"unknown test-time augmentation(s) {unknown}; choose from {sorted(TTA_TRANSFORMS)}"
            " or 'all'"
        )
    return names


def _predict_yx(
    forward: Callable[[Tensor], Tensor],
    x: Tensor,
    tile_yx: tuple[int, int],
    overlap_yx: tuple[int, int],
    tta: tuple[str, ...],
    reduction: Literal["mean", "median"],
) -> Tensor:
    """Blend Y/X tiles of one Z window ``(B, C, Z, Y, X)``."""
    size_y, size_x = x.shape[-2:]
    tile_y, tile_x = min(tile_yx[0], size_y), min(tile_yx[1], size_x)
    # a FOV smaller than the tile is padded up to the tile (networks need multiples of 2^k)
    padded = _pad_to(x, max(tile_yx[0], size_y), max(tile_yx[1], size_x))
    if padded is not x:
        out = _predict_yx(forward, padded, tile_yx, overlap_yx, tta, reduction)
        return out[..., :size_y, :size_x]
    starts_y = tile_starts(size_y, tile_y, overlap_yx[0])
    starts_x = tile_starts(size_x, tile_x, overlap_yx[1])
    out: Tensor | None = None
    norm: Tensor | None = None
    for y0 in starts_y:
        wy = tile_weights(tile_y, overlap_yx[0], y0 == 0, y0 + tile_y >= size_y)
        for x0 in starts_x:
            wx = tile_weights(tile_x, overlap_yx[1], x0 == 0, x0 + tile_x >= size_x)
            tile = x[..., y0 : y0 + tile_y, x0 : x0 + tile_x]
            pred = _with_tta(forward, tile, tta, reduction)
            if len(starts_y) == 1 and len(starts_x) == 1:
                return pred
            weight = (wy[:, None] * wx[None, :]).to(device=pred.device, dtype=torch.float32)
            if out is None:
                out = pred.new_zeros((*pred.shape[:-2], size_y, size_x), dtype=torch.float32)
                norm = torch.zeros((size_y, size_x), device=pred.device, dtype=torch.float32)
            out[..., y0 : y0 + tile_y, x0 : x0 + tile_x] += pred.float() * weight
            norm[y0 : y0 + tile_y, x0 : x0 + tile_x] += weight
    assert out is not None and norm is not None
    return (out / norm).to(x.dtype if x.is_floating_point() else torch.float32)


@torch.no_grad()
def predict_sliding_window(
    forward: Callable[[Tensor], Tensor],
    source: Tensor,
    tile_yx: Sequence[int],
    overlap_yx: Sequence[int] | int | None = None,
    z_window: int | None = None,
    z_overlap: int | None = None,
    tta: Sequence[str] | None = None,
    tta_reduction: Literal["mean", "median"] = "mean",
) -> Tensor:
    """Predict a whole ``(B, C, Z, Y, X)`` stack with a network taking smaller inputs.

    Parameters
    ----------
    forward : callable
        ``(B, C_in, z_window, tile_y, tile_x) -> (B, C_out, Z_out, tile_y, tile_x)``.
    source : Tensor
        The normalized input stack.
    tile_yx : sequence of int
        Y/X size of the network input (multiples of what the network needs, e.g. 32);
        images smaller than a tile are padded up to it (reflection) and cropped back.
    overlap_yx : int or sequence of int, optional
        Overlap of neighbouring tiles in pixels; a quarter of the tile when None.
    z_window : int, optional
        Network input depth; the stack's own depth when None.
    z_overlap : int, optional
        Overlap of Z windows for networks whose output is as deep as their input; half the
        window when None. (Networks predicting fewer slices step one slice at a time.)
    tta : sequence of str, optional
        Test-time augmentations (names in :data:`TTA_TRANSFORMS`, or ``["all"]``); each
        tile is predicted under every one, mapped back and combined.
    tta_reduction : {"mean", "median"}
        How the augmented predictions are combined.

    Returns
    -------
    Tensor
        ``(B, C_out, Z_out, Y, X)``. With Z windows, ``Z_out = Z - z_window + out_depth``:
        the slices from the first window's centre to the last's.
    """
    if source.ndim != 5:
        raise ValueError(f"expected a (B, C, Z, Y, X) stack, got shape {tuple(source.shape)}")
    if tta_reduction not in ("mean", "median"):
        raise ValueError(f"tta_reduction must be 'mean' or 'median', got {tta_reduction!r}")
    tile = (int(tile_yx[0]), int(tile_yx[1]))
    if overlap_yx is None:
        overlap = (tile[0] // 4, tile[1] // 4)
    elif isinstance(overlap_yx, int):
        overlap = (overlap_yx, overlap_yx)
    else:
        overlap = (int(overlap_yx[0]), int(overlap_yx[1]))
    names = _resolve_tta(tta)
    depth = source.shape[2]
    window = depth if z_window is None else int(z_window)
    if window > depth:
        raise ValueError(f"z_window={window} is deeper than the stack (Z={depth})")
    if window == depth:
        return _predict_yx(forward, source, tile, overlap, names, tta_reduction)
    first = _predict_yx(forward, source[:, :, :window], tile, overlap, names, tta_reduction)
    out_depth = first.shape[2]
    if out_depth == window:
        step = window - (window // 2 if z_overlap is None else int(z_overlap))
        if step < 1:
            raise ValueError(f"z_overlap={z_overlap} must be smaller than z_window={window}")
    else:
        step = 1
    starts = tile_starts(depth, window, window - step)
    total = depth - window + out_depth
    out = first.new_zeros((*first.shape[:2], total, *first.shape[3:]), dtype=torch.float32)
    count = torch.zeros(total, device=first.device, dtype=torch.float32)
    for z0 in starts:
        pred = (
            first
            if z0 == 0
            else _predict_yx(
                forward, source[:, :, z0 : z0 + window], tile, overlap, names, tta_reduction
            )
        )
        out[:, :, z0 : z0 + out_depth] += pred.float()
        count[z0 : z0 + out_depth] += 1.0
    return out / count[None, None, :, None, None]
