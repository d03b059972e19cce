"""In-memory single-cell crops for ``dynaclr demo``.

The demo plate is small, so every cell crop is read once into memory; training then
samples temporal triplets (anchor: a cell at t, positive: the same track at t + 1,
negative: a random other cell) with light augmentations, as ``TripletDataset`` does
for real plates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

INDEX_COLUMNS = ("fov_name", "track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x")


def _channel_stats(position, channel_names: Sequence[str], image: np.ndarray) -> np.ndarray:
    """(C, 2) mean/std per channel from the FOV's normalization metadata, else the image."""
    stats = np.zeros((len(channel_names), 2), dtype=np.float32)
    meta = position.zattrs.get("normalization", {}) if hasattr(position, "zattrs") else {}
    for c, name in enumerate(channel_names):
        level = meta.get(name, {}).get("dataset_statistics")
        if level is not None and float(level.get("std", 0)) > 0:
            stats[c] = float(level["mean"]), float(level["std"])
        else:
            values = image[:, c].astype(np.float32)
            stats[c] = values.mean(), max(float(values.std()), 1e-6)
    return stats


def load_cell_crops(
    plate_path: str | Path,
    cells: pd.DataFrame,
    crop_size: int,
    fov_names: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Read a (crop_size x crop_size) window around every tracked cell.

    Windows near an image border are shifted inward so each crop has the full size.
    Intensities are z-scored per channel with the FOV's normalization metadata.

    Returns
    -------
    tuple[np.ndarray, pd.DataFrame]
        Crops (N, C, Z, crop_size, crop_size) float32, and the matching cell rows.
    """
    from iohub import open_ome_zarr

    cells = cells.copy()
    cells["fov_name"] = cells["fov_name"].astype(str).str.strip("/")
    if fov_names is not None:
        cells = cells[cells["fov_name"].isin([f.strip("/") for f in fov_names])]
    cells = cells.sort_values(["fov_name", "track_id", "t"]).reset_index(drop=True)
    crops = []
    half = crop_size // 2
    with open_ome_zarr(plate_path, mode="r") as plate:
        channel_names = list(plate.channel_names)
        groups = list(cells.groupby("fov_name", sort=False))
        for fov, rows in tqdm(groups, desc="reading cell crops", disable=not progress):
            position = plate[fov]
            image = np.asarray(position["0"][:])  # (T, C, Z, Y, X)
            stats = _channel_stats(position, channel_names, image)
            image = (image.astype(np.float32) - stats[None, :, 0, None, None, None]) / stats[
                None, :, 1, None, None, None
            ]
            _, _, _, height, width = image.shape
            if crop_size > min(height, width):
                raise ValueError(
                    f"crop_size {crop_size} is larger than FOV {fov} ({height}x{width})"
                )
            ys = np.clip(rows["y"].round().astype(int).to_numpy() - half, 0, height - crop_size)
            xs = np.clip(rows["x"].round().astype(int).to_numpy() - half, 0, width - crop_size)
            for t, y0, x0 in zip(rows["t"].to_numpy(), ys, xs, strict=True):
                patch = image[int(t), :, :, y0 : y0 + crop_size, x0 : x0 + crop_size]
                crops.append(patch)
    return np.stack(crops), cells


def _augment(x: torch.Tensor, g: torch.Generator, out_size: int) -> torch.Tensor:
    """Random shift (crop), flip, 90 degree rotation, intensity scale and noise."""
    size = x.shape[-1]
    y0, x0 = (int(v) for v in torch.randint(0, size - out_size + 1, (2,), generator=g))
    x = x[..., y0 : y0 + out_size, x0 : x0 + out_size]
    if torch.rand((), generator=g) < 0.5:
        x = x.flip(-1)
    x = torch.rot90(x, int(torch.randint(0, 4, (), generator=g)), dims=(-2, -1))
    scale = 1.0 + 0.2 * (torch.rand((x.shape[0], 1, 1, 1), generator=g) - 0.5)
    noise = 0.1 * torch.randn(x.shape, generator=g)
    return x * scale + noise


def _center(x: torch.Tensor, out_size: int) -> torch.Tensor:
    start = (x.shape[-1] - out_size) // 2
    return x[..., start : start + out_size, start : start + out_size]


class TemporalTripletDataset(Dataset):
    """Anchor = a cell at t, positive = the same track at t + 1, negative = a random cell.

    Parameters
    ----------
    crops : np.ndarray
        (N, C, Z, S, S) crops from :func:`load_cell_crops`.
    cells : pd.DataFrame
        The matching rows (``fov_name, track_id, t``).
    patch_size : int
        Side of the returned crops (<= S; the margin is used for random shifts).
    augment : bool
        Apply random augmentations (else center crops).
    seed : int
        Seed of the sampling and augmentation generator.
    """

    def __init__(
        self,
        crops: np.ndarray,
        cells: pd.DataFrame,
        patch_size: int,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        self.crops = torch.from_numpy(crops)
        self.patch_size = patch_size
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)
        key = cells["fov_name"].astype(str) + "/" + cells["track_id"].astype(str)
        lookup = {(k, int(t)): i for i, (k, t) in enumerate(zip(key, cells["t"], strict=True))}
        anchors, positives = [], []
        for i, (k, t) in enumerate(zip(key, cells["t"], strict=True)):
            j = lookup.get((k, int(t) + 1))
            if j is not None:
                anchors.append(i)
                positives.append(j)
        if not anchors:
            raise ValueError("No track has two consecutive timepoints: cannot build positives")
        self.anchors = np.asarray(anchors)
        self.positives = np.asarray(positives)

    def __len__(self) -> int:
        return len(self.anchors)

    def _view(self, i: int) -> torch.Tensor:
        crop = self.crops[i]
        if self.augment:
            return _augment(crop, self.generator, self.patch_size)
        return _center(crop, self.patch_size)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        i, j = int(self.anchors[k]), int(self.positives[k])
        n = int(torch.randint(0, len(self.crops) - 1, (), generator=self.generator))
        n = n + 1 if n >= i else n  # never the anchor itself
        return {"anchor": self._view(i), "positive": self._view(j), "negative": self._view(n)}


class CellCropDataset(Dataset):
    """Center crops of every cell with the tracking index, for ``predict``."""

    def __init__(self, crops: np.ndarray, cells: pd.DataFrame, patch_size: int) -> None:
        self.crops = torch.from_numpy(crops)
        self.cells = cells.reset_index(drop=True)
        self.patch_size = patch_size
        self._index = {c: self.cells[c].tolist() for c in INDEX_COLUMNS if c in self.cells.columns}

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict:
        return {
            "anchor": _center(self.crops[i], self.patch_size),
            "index": {c: values[i] for c, values in self._index.items()},
        }
