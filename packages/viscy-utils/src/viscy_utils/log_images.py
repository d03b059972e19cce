"""Turn batches of images into one RGB grid for logging."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from viscy_utils.tensor_utils import to_numpy


def detach_sample(
    imgs: Sequence[torch.Tensor], log_samples_per_batch: int
) -> list[list[np.ndarray]]:
    """Take the first samples of several image batches as numpy arrays.

    Parameters
    ----------
    imgs : sequence of torch.Tensor
        Batches ``(B, C, Z, Y, X)`` or ``(B, C, Y, X)`` (e.g. source, target,
        prediction), all with the same B.
    log_samples_per_batch : int
        Samples kept (capped at B).

    Returns
    -------
    list[list[np.ndarray]]
        One list per sample, holding one ``(C, Y, X)`` array per batch (the
        middle Z slice of 3-D images).
    """
    n = min(log_samples_per_batch, min(int(img.shape[0]) for img in imgs))
    samples = []
    for i in range(n):
        row = []
        for img in imgs:
            arr = to_numpy(img[i])
            if arr.ndim == 4:
                arr = arr[:, arr.shape[1] // 2]
            if arr.ndim != 3:
                raise ValueError(f"Expected (C, [Z,] Y, X) images, got shape {tuple(img[i].shape)}")
            row.append(arr)
        samples.append(row)
    return samples


def _to_unit_range(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99]) if img.size else (0.0, 1.0)
    if hi <= lo:
        return np.zeros_like(img, dtype=np.float32)
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def render_images(imgs: Sequence[Sequence[np.ndarray]], cmaps: Sequence[str] = ()) -> np.ndarray:
    """Tile samples into one RGB image: a row per sample, a tile per channel.

    Parameters
    ----------
    imgs : sequence of sequences of np.ndarray
        As returned by :func:`detach_sample`: rows of ``(C, Y, X)`` arrays.
    cmaps : sequence of str
        Matplotlib colormap for each array of a row (default gray); requires
        matplotlib when given.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` uint8 grid, each tile contrast-stretched to its 1-99th
        percentile.
    """
    rows = []
    for sample in imgs:
        tiles = []
        for j, img in enumerate(sample):
            cmap_name = cmaps[j] if j < len(cmaps) else None
            for channel in np.asarray(img, dtype=np.float32):
                unit = _to_unit_range(channel)
                if cmap_name and cmap_name not in ("gray", "grey"):
                    from matplotlib import colormaps

                    rgb = colormaps[cmap_name](unit)[..., :3]
                else:
                    rgb = np.repeat(unit[..., None], 3, axis=-1)
                tiles.append(rgb)
        if not tiles:
            continue
        height = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
        rows.append(np.concatenate(tiles, axis=1))
    if not rows:
        raise ValueError("render_images got no images")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
