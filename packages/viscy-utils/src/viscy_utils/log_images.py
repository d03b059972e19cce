"""Turn batches of images into one RGB grid for logging.

Two pairs of functions:

- :func:`detach_sample` / :func:`render_images` are the 0.1.0 names with the
  0.1.0 behaviour: one 2-D tile per channel, each scaled to its min/max, with a
  matplotlib colormap per column (gray, then inferno, by default).
- :func:`detach_stacks` / :func:`render_stack_grid` are what our own loggers
  (``ImageGridLogger``, cytoland's engine) use: ``(C, Y, X)`` arrays per image,
  tiles stretched to the 1st-99th percentiles (robust to hot pixels), gray
  unless a colormap is given per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from viscy_utils.tensor_utils import to_numpy


def detach_stacks(
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


def render_stack_grid(
    imgs: Sequence[Sequence[np.ndarray]], cmaps: Sequence[str] = ()
) -> np.ndarray:
    """Tile samples into one RGB image: a row per sample, a tile per channel.

    Parameters
    ----------
    imgs : sequence of sequences of np.ndarray
        As returned by :func:`detach_stacks`: rows of ``(C, Y, X)`` arrays.
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
        raise ValueError("render_stack_grid got no images")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)


def detach_sample(
    imgs: Sequence[torch.Tensor], log_samples_per_batch: int
) -> list[list[np.ndarray]]:
    """Take the first samples of several image batches as 2-D arrays (0.1.0).

    Parameters
    ----------
    imgs : sequence of torch.Tensor
        Batches ``(B, C, Z, Y, X)`` (e.g. source, target, prediction), all with
        the same B. ``(B, C, Y, X)`` batches are taken as they are (0.1.0 sliced
        their Y axis instead).
    log_samples_per_batch : int
        Samples kept (capped at B).

    Returns
    -------
    list[list[np.ndarray]]
        One list per sample, holding one ``(Y, X)`` array per channel of each
        batch in turn: the middle Z slice.
    """
    return [
        [channel for stack in row for channel in stack]
        for row in detach_stacks(imgs, log_samples_per_batch)
    ]


def _min_max(img: np.ndarray) -> np.ndarray:
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        # a constant tile renders at the top of its colormap, as in 0.1.0
        return np.ones_like(img, dtype=np.float64)
    return (img - lo) / (hi - lo)


def render_images(imgs: Sequence[Sequence[np.ndarray]], cmaps: Sequence[str] = ()) -> np.ndarray:
    """Tile 2-D images into one RGB grid: a row per sample, a column per image (0.1.0).

    Parameters
    ----------
    imgs : sequence of sequences of np.ndarray
        As returned by :func:`detach_sample`: rows of ``(Y, X)`` arrays, all of
        one size.
    cmaps : sequence of str
        Matplotlib colormaps, cycled over the columns; by default the first
        column is gray and the others inferno. Needs matplotlib
        (``pip install 'viscy-utils[eval]'``).

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` uint8 grid, each tile scaled to its own min/max.
    """
    try:
        from matplotlib import colormaps
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "render_images needs matplotlib: pip install 'viscy-utils[eval]'"
        ) from exc
    if not imgs or not any(len(row) for row in imgs):
        raise ValueError("render_images got no images")
    rows = []
    for sample in imgs:
        tiles = []
        for j, img in enumerate(sample):
            img = np.asarray(img, dtype=np.float64)
            if img.ndim != 2:
                raise ValueError(
                    f"render_images expects 2-D (Y, X) images; column {j} has shape {img.shape}"
                )
            if cmaps:
                name = cmaps[j % len(cmaps)]
            else:
                name = "gray" if j == 0 else "inferno"
            tiles.append(colormaps[name](_min_max(img))[..., :3])
        rows.append(np.concatenate(tiles, axis=1))
    return (np.concatenate(rows, axis=0) * 255).astype(np.uint8)
