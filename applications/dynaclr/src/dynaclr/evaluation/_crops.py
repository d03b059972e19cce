"""Cell crops for galleries and the explorer, read through viscy-data's patch reader."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dynaclr.evaluation._io import clean_fov, require_columns


def read_cell_crops(
    plate_path: str | Path,
    obs: pd.DataFrame,
    size: int = 48,
    channels: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Read a ``size`` x ``size`` window around each cell of ``obs`` (one z slice).

    Windows are centred on ``(y, x)`` and shifted inward at the FOV border; the slice is
    ``obs["z"]`` when present (clipped to the stack), else the middle one.

    Returns
    -------
    tuple
        ``(N, C, size, size)`` float32 crops and the channel names read.
    """
    from viscy_data import PatchBox, PatchReader

    require_columns(obs, ("fov_name", "t", "y", "x"), "obs (to read cell crops)")
    reader = PatchReader(plate_path)
    names = reader.channel_names
    channels = list(channels) if channels else names
    unknown = [c for c in channels if c not in names]
    if unknown:
        raise KeyError(f"Channel(s) {unknown} not in {plate_path} (channels: {names})")
    channel_index = tuple(names.index(c) for c in channels)
    fovs = clean_fov(obs["fov_name"]).to_numpy()
    boxes = []
    for i, fov in enumerate(fovs):
        _, _, depth, height, width = reader.shape(fov)
        side_y, side_x = min(size, height), min(size, width)
        y0 = int(np.clip(round(float(obs["y"].iloc[i])) - side_y // 2, 0, height - side_y))
        x0 = int(np.clip(round(float(obs["x"].iloc[i])) - side_x // 2, 0, width - side_x))
        z = int(np.clip(int(obs["z"].iloc[i]), 0, depth - 1)) if "z" in obs else depth // 2
        boxes.append(
            PatchBox(
                position=fov,
                t=int(obs["t"].iloc[i]),
                channels=channel_index,
                z=(z, z + 1),
                y=(y0, y0 + side_y),
                x=(x0, x0 + side_x),
            )
        )
    try:
        crops = reader.read_patches(boxes) if boxes else np.zeros((0, len(channels), 1, 0, 0))
    finally:
        reader.close()
    return np.asarray(crops, dtype=np.float32)[:, :, 0], channels


#: Display colour of each channel in a composite (label-free grey first, then these).
_COLOURS = ((0.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.0, 0.6, 1.0), (1.0, 0.6, 0.0))
_LABELFREE = ("phase", "bf", "bright", "dic", "retardance")


def to_rgb(crops: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """Composite ``(N, C, Y, X)`` crops into ``(N, Y, X, 3)`` uint8.

    Label-free channels are grey, fluorescence channels green, magenta, ...; each channel
    is scaled to its 1st-99.5th percentile over all crops, so brightness is comparable
    between cells.
    """
    n, _, h, w = crops.shape
    rgb = np.zeros((n, h, w, 3), dtype=np.float32)
    colour_iter = iter(_COLOURS)
    for c, name in enumerate(channels):
        values = crops[:, c]
        lo, hi = np.percentile(values, [1.0, 99.5]) if values.size else (0.0, 1.0)
        scaled = np.clip((values - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)
        if any(k in name.lower() for k in _LABELFREE):
            colour = (0.6, 0.6, 0.6)
        else:
            colour = next(colour_iter, (1.0, 1.0, 1.0))
        rgb += scaled[..., None] * np.asarray(colour, dtype=np.float32)
    return (np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
