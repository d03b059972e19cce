"""Cell patches with a class label from an annotation CSV (e.g. infection state).

The annotation CSV has one row per cell observation: ``fov_name, t, y, x`` (centroid in
pixels), the label column (e.g. ``infection_state``) and optionally the other
``ULTRACK_INDEX_COLUMNS``. Labels may be integers or the state names of the matching
``LABEL_*`` mapping (``"infected"`` -> 1); ``-1`` / ``"unknown"`` marks unlabeled cells.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from iohub.ngff.nodes import Plate
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from viscy_data._reader import PatchBox, PatchReader
from viscy_data._tracks import _bad_rows, _centroid_column, _integer_column, patch_starts
from viscy_data._typing import (
    LABEL_CELL_CYCLE_STATE,
    LABEL_CELL_DIVISION_STATE,
    LABEL_CELL_REMODELING_STATE,
    LABEL_INFECTION_STATE,
    ULTRACK_INDEX_COLUMNS,
)
from viscy_data._utils import read_norm_meta
from viscy_data.transfer import DeviceTransformMixin

__all__ = ["ClassificationDataModule", "ClassificationDataset"]

_LABEL_MAPS: dict[str, dict[str, int]] = {
    "infection_state": LABEL_INFECTION_STATE,
    "cell_division_state": LABEL_CELL_DIVISION_STATE,
    "cell_remodeling_state": LABEL_CELL_REMODELING_STATE,
    "cell_cycle_state": LABEL_CELL_CYCLE_STATE,
}
LabelColumn = Literal[
    "infection_state", "cell_division_state", "cell_remodeling_state", "cell_cycle_state"
]


class _Chain:
    """Apply callables in order (picklable, unlike a closure)."""

    def __init__(self, transforms: Sequence[Callable] | None) -> None:
        self.transforms = list(transforms or [])

    def __call__(self, x: Any) -> Any:
        for transform in self.transforms:
            x = transform(x)
        return x


def _label_values(annotation: pd.DataFrame, label_column: str, source: str) -> np.ndarray:
    """Integer labels of ``label_column``: names mapped with the column's ``LABEL_*`` dict."""
    if label_column not in annotation.columns:
        raise ValueError(
            f"{source} has no label column '{label_column}'; found {list(annotation.columns)}"
        )
    raw = annotation[label_column]
    mapping = _LABEL_MAPS.get(label_column, {})
    numeric = pd.to_numeric(raw, errors="coerce")
    named = raw.map(lambda v: mapping.get(v) if isinstance(v, str) else None)
    values = numeric.where(numeric.notna(), pd.to_numeric(named, errors="coerce"))
    missing = values.isna().to_numpy()
    if missing.any():
        lines = ", ".join(str(i + 2) for i in np.flatnonzero(missing)[:5])
        raise ValueError(
            f"{source}: label column '{label_column}' has values that are neither integers nor "
            f"one of {sorted(mapping)} on line(s) {lines}"
        )
    return values.to_numpy(dtype=np.int64)


def validate_annotation(
    annotation: pd.DataFrame, reader: PatchReader, label_column: str, source: str
) -> pd.DataFrame:
    """Check an annotation table against the plate; return it with clean integer columns."""
    missing = [c for c in ("fov_name", "t", "y", "x") if c not in annotation.columns]
    if missing:
        raise ValueError(f"{source} lacks column(s) {missing}; found {list(annotation.columns)}")
    out = annotation.reset_index(drop=True).copy()
    out["fov_name"] = out["fov_name"].astype(str).str.strip("/")
    unknown = sorted(set(out["fov_name"]) - set(reader.position_names))
    if unknown:
        raise ValueError(
            f"{source}: FOV(s) {unknown[:5]} are not in {reader.store_path} "
            f"(FOVs: {reader.position_names[:5]}...)"
        )
    out["t"] = _integer_column(out, "t", source)
    out[label_column] = _label_values(out, label_column, source)
    shapes = {name: reader.shape(name) for name in out["fov_name"].unique()}
    n_t = out["fov_name"].map(lambda n: shapes[n][0]).to_numpy()
    beyond = (out["t"].to_numpy() < 0) | (out["t"].to_numpy() >= n_t)
    if beyond.any():
        raise ValueError(
            f"{source}: column 't' is beyond the image's timepoints on line(s) {_bad_rows(beyond)}"
        )
    for axis, column in ((3, "y"), (4, "x")):
        extent = out["fov_name"].map(lambda n, a=axis: shapes[n][a]).to_numpy()
        _centroid_column(out, column, source, int(extent.max()))  # checks numbers, range
        # 0.1.0 centers a patch on the truncated centroid (int(48.9) = 48), not the rounded
        values = np.trunc(out[column].to_numpy(dtype=np.float64)).astype(np.int64)
        outside = values >= extent
        if outside.any():
            raise ValueError(
                f"{source}: centroid column '{column}' is outside the image on line(s) "
                f"{_bad_rows(outside)}"
            )
        out[column] = values
    return out


class ClassificationDataset(Dataset):
    """Single-channel cell patches and their class labels.

    As in 0.1.0, each patch is z-scored with its FOV's statistics of the channel
    (``fov_statistics`` ``mean`` and ``std`` in the FOV's normalization metadata, written by
    ``viscy preprocess``) before ``transform``, and a label is a float32 tensor of shape (1,).

    Parameters
    ----------
    plate : Plate
        iohub plate holding the images (only its store location is used).
    annotation : pd.DataFrame
        One row per cell: ``fov_name, t, y, x`` and ``label_column``.
    channel_name : str
        Channel to read.
    z_range : tuple[int, int]
        Z slices ``[start, stop)``.
    transform : callable, optional
        Applied to each z-scored (1, Z, Y, X) float patch.
    initial_yx_patch_size : tuple[int, int]
        Patch size around each centroid (shifted inward at image borders).
    return_indices : bool
        Also return the row's ``ULTRACK_INDEX_COLUMNS`` present in the annotation.
    label_column : str
        Annotation column holding the labels.
    reader : PatchReader, optional
        Reader of the plate; opened on the plate's store when not given.
    """

    def __init__(
        self,
        plate: Plate,
        annotation: pd.DataFrame,
        channel_name: str,
        z_range: tuple[int, int],
        transform: Callable | None,
        initial_yx_patch_size: tuple[int, int],
        return_indices: bool = False,
        label_column: LabelColumn = "infection_state",
        *,
        reader: PatchReader | None = None,
    ) -> None:
        super().__init__()
        if reader is None:
            root = getattr(plate.zgroup.store, "root", None)
            if root is None:
                raise ValueError("The plate is not in a local store; pass reader=")
            reader = PatchReader(Path(root))
        self.reader = reader
        if channel_name not in reader.channel_names:
            raise ValueError(
                f"Unknown channel '{channel_name}' in {reader.store_path}; "
                f"channels are {reader.channel_names}"
            )
        self.channel = (reader.channel_names.index(channel_name),)
        self.z_range = (int(z_range[0]), int(z_range[1]))
        self.patch_size = (int(initial_yx_patch_size[0]), int(initial_yx_patch_size[1]))
        self.label_column = label_column
        self.return_indices = return_indices
        self.transform = transform
        self.annotation = validate_annotation(annotation, reader, label_column, "annotation")
        for name in self.annotation["fov_name"].unique():
            _, _, n_z, n_y, n_x = reader.shape(name)
            z0, z1 = self.z_range
            if not 0 <= z0 < z1 <= n_z:
                raise ValueError(
                    f"z_range {self.z_range} is outside the Z stack of FOV '{name}' (Z size {n_z})"
                )
            if self.patch_size[0] > n_y or self.patch_size[1] > n_x:
                raise ValueError(
                    f"Patch size {self.patch_size} is larger than the image of FOV '{name}' "
                    f"(Y, X = {n_y}, {n_x})"
                )
        extents = np.array([reader.shape(n)[3:] for n in self.annotation["fov_name"]])
        extents = extents.reshape(-1, 2)
        self._y0 = patch_starts(self.annotation["y"].to_numpy(), self.patch_size[0], extents[:, 0])
        self._x0 = patch_starts(self.annotation["x"].to_numpy(), self.patch_size[1], extents[:, 1])
        self._labels = self.annotation[label_column].to_numpy(dtype=np.float32)
        self._fov_stats = self._read_fov_stats(channel_name)
        self._index_columns = [c for c in ULTRACK_INDEX_COLUMNS if c in self.annotation.columns]

    def _read_fov_stats(self, channel_name: str) -> dict[str, tuple[float, float]]:
        """``(mean, std)`` of the channel in each annotated FOV (``fov_statistics``)."""
        from iohub.ngff import open_ome_zarr

        stats: dict[str, tuple[float, float]] = {}
        with open_ome_zarr(self.reader.store_path, mode="r") as plate:
            for name in self.annotation["fov_name"].unique():
                meta = read_norm_meta(plate[name]) or {}
                fov = meta.get(channel_name, {}).get("fov_statistics") or {}
                if "mean" not in fov or "std" not in fov:
                    raise ValueError(
                        f"Normalization metadata 'fov_statistics' (mean, std) for channel "
                        f"'{channel_name}' is missing in FOV '{name}' of "
                        f"{self.reader.store_path}; compute it with `viscy preprocess`"
                    )
                stats[name] = (float(fov["mean"]), float(fov["std"]))
        return stats

    def __len__(self) -> int:
        return len(self.annotation)

    def _box(self, i: int) -> PatchBox:
        row = self.annotation.iloc[i]
        y0, x0 = int(self._y0[i]), int(self._x0[i])
        return PatchBox(
            position=row["fov_name"],
            t=int(row["t"]),
            channels=self.channel,
            z=self.z_range,
            y=(y0, y0 + self.patch_size[0]),
            x=(x0, x0 + self.patch_size[1]),
        )

    def _sample(self, i: int, patch: np.ndarray) -> tuple:
        mean, std = self._fov_stats[self.annotation["fov_name"].iat[i]]
        img = (torch.from_numpy(np.asarray(patch, dtype=np.float32)) - mean) / std
        if self.transform is not None:
            img = self.transform(img)
        label = torch.tensor(self._labels[i : i + 1])
        if self.return_indices:
            row = self.annotation.iloc[i]
            index = {c: (row[c] if c == "fov_name" else int(row[c])) for c in self._index_columns}
            return img, label, index
        return img, label

    def __getitems__(self, indices: Sequence[int]) -> list[tuple]:
        """Samples of a batch, read in one batched call."""
        patches = self.reader.read_patches([self._box(int(i)) for i in indices])
        return [self._sample(int(i), p) for i, p in zip(indices, patches, strict=True)]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, dict]:
        return self._sample(index, self.reader.read_patch(self._box(index)))


class ClassificationDataModule(DeviceTransformMixin, LightningDataModule):
    """Lightning DataModule of labeled cell patches.

    Transforms run per patch in the loader (``train_transforms`` / ``val_transforms``);
    there is no device transform, so batches reach the model as the loader made them.

    Parameters
    ----------
    image_path : Path
        HCS OME-Zarr plate.
    annotation_path : Path
        Annotation CSV (see module docstring).
    val_fovs : list[str]
        FOVs (``"A/1/0"``) used for validation; the others train.
    channel_name : str
        Channel to read.
    z_range : tuple[int, int]
        Z slices ``[start, stop)``.
    train_exclude_timepoints : list[int]
        Timepoints left out of training.
    train_transforms, val_transforms : list of callables, optional
        Applied in order to each (1, Z, Y, X) patch.
    initial_yx_patch_size : tuple[int, int]
        Patch size.
    batch_size, num_workers : int
        Loader settings.
    label_column : str
        Annotation column with the labels; unlabeled (-1) rows are left out of fit.
    """

    def __init__(
        self,
        image_path: Path,
        annotation_path: Path,
        val_fovs: list[str],
        channel_name: str,
        z_range: tuple[int, int],
        train_exclude_timepoints: list[int],
        train_transforms: list[Callable] | None,
        val_transforms: list[Callable] | None,
        initial_yx_patch_size: tuple[int, int],
        batch_size: int,
        num_workers: int,
        label_column: LabelColumn = "infection_state",
    ) -> None:
        super().__init__()
        self.image_path = Path(image_path)
        self.annotation_path = Path(annotation_path)
        self.val_fovs = [f.strip("/") for f in val_fovs]
        self.channel_name = channel_name
        self.z_range = tuple(z_range)
        self.train_exclude_timepoints = list(train_exclude_timepoints or [])
        self.train_transform = _Chain(train_transforms)
        self.val_transform = _Chain(val_transforms)
        self.initial_yx_patch_size = tuple(initial_yx_patch_size)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.label_column = label_column

    def _read_annotation(self) -> pd.DataFrame:
        if not self.annotation_path.is_file():
            raise FileNotFoundError(f"Annotation CSV not found: {self.annotation_path}")
        try:
            return pd.read_csv(self.annotation_path)
        except Exception as err:
            raise ValueError(f"Cannot read annotation CSV {self.annotation_path}: {err}") from err

    def _dataset(
        self,
        reader: PatchReader,
        annotation: pd.DataFrame,
        transform: Callable,
        return_indices: bool,
    ) -> ClassificationDataset:
        return ClassificationDataset(
            plate=None,  # type: ignore[arg-type]  # the reader gives the store
            annotation=annotation,
            channel_name=self.channel_name,
            z_range=self.z_range,
            transform=transform,
            initial_yx_patch_size=self.initial_yx_patch_size,
            return_indices=return_indices,
            label_column=self.label_column,
            reader=reader,
        )

    def setup(self, stage: str | None = None) -> None:
        """Read and validate the annotation, split it by FOV and build the datasets.

        Raises
        ------
        NotImplementedError
            For ``stage="test"`` (no test stage, as in 0.1.0).
        ValueError
            For an unknown stage, or an annotation that does not fit the plate.
        """
        if stage == "test":
            raise NotImplementedError("ClassificationDataModule has no test stage")
        if stage not in ("fit", "validate", "predict", None):
            raise ValueError(f"Unknown stage: {stage}")
        if not self.image_path.exists():
            raise FileNotFoundError(f"OME-Zarr plate not found: {self.image_path}")
        reader = PatchReader(self.image_path)
        source = f"Annotation CSV {self.annotation_path}"
        annotation = validate_annotation(self._read_annotation(), reader, self.label_column, source)
        if stage in ("fit", "validate", None):
            unknown_val = sorted(set(self.val_fovs) - set(reader.position_names))
            if unknown_val:
                raise ValueError(f"val_fovs {unknown_val} are not in {self.image_path}")
            labeled = annotation[annotation[self.label_column] >= 0]
            is_val = labeled["fov_name"].isin(self.val_fovs)
            train = labeled[~is_val & ~labeled["t"].isin(self.train_exclude_timepoints)]
            val = labeled[is_val]
            if len(train) == 0:
                raise ValueError(f"{source}: no labeled training cells outside val_fovs")
            self.train_dataset = self._dataset(reader, train, self.train_transform, False)
            self.val_dataset = (
                self._dataset(reader, val, self.val_transform, False) if len(val) else None
            )
        if stage in ("predict", None):
            self.predict_dataset = self._dataset(reader, annotation, self.val_transform, True)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_dataset is None else self._loader(self.val_dataset, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_dataset, shuffle=False)
