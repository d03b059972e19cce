"""Write predicted embeddings to an AnnData zarr store."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from viscy_data import ULTRACK_INDEX_COLUMNS
from viscy_utils._imports import optional_import
from viscy_utils.callbacks._atomic import remove_path, replace_path, temporary_sibling

_logger = logging.getLogger(__name__)


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def index_to_dataframe(index: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Turn batch ``index`` dicts (columns of lists or 1-D tensors) into one DataFrame.

    Parameters
    ----------
    index : mapping or sequence of mappings
        One batch's ``index`` (``{"fov_name": [...], "track_id": tensor, ...}``)
        or a list of them, concatenated in order.

    Returns
    -------
    pd.DataFrame
    """
    batches = [index] if isinstance(index, Mapping) else list(index)
    frames = []
    for batch in batches:
        columns = {}
        for key, value in batch.items():
            arr = _to_numpy(value) if not isinstance(value, list | tuple) else np.asarray(value)
            if arr.ndim != 1:
                raise ValueError(f"index column {key!r} must be 1-D per batch, got {arr.shape}")
            columns[key] = arr
        lengths = {k: len(v) for k, v in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"index columns have different lengths: {lengths}")
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


#: Index columns of an embedding dataset, in the order they form its ``sample`` index
#: (the cell-identifying columns of a tracks table).
INDEX_COLUMNS: list[str] = list(ULTRACK_INDEX_COLUMNS)

# 0.1.0 reports legacy datasets on Lightning's logger
_lightning_logger = logging.getLogger("lightning.pytorch")


def collect_data_provenance(trainer: Trainer) -> dict[str, Any]:
    """``data_path`` / ``tracks_path`` of the trainer's datamodule, as strings.

    Parameters
    ----------
    trainer : Trainer
        A trainer whose ``datamodule`` may have ``data_path`` and ``tracks_path``.

    Returns
    -------
    dict[str, Any]
        The attributes the datamodule has (``str()`` of their values, ``None`` included);
        empty without a datamodule.
    """
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is None:
        return {}
    return {
        key: str(getattr(datamodule, key))
        for key in ("data_path", "tracks_path")
        if hasattr(datamodule, key)
    }


def get_available_index_columns(dataset: Any, dataset_path: str | None = None) -> list[str]:
    """The :data:`INDEX_COLUMNS` that are coordinates of ``dataset``, in that order.

    Missing ones are logged as a warning (a legacy dataset) on the ``lightning.pytorch``
    logger, naming ``dataset_path`` when given.

    Parameters
    ----------
    dataset : xarray.Dataset
    dataset_path : str, optional
        Named in the warning.

    Returns
    -------
    list[str]
    """
    available = [c for c in INDEX_COLUMNS if c in dataset.coords]
    missing = sorted(set(INDEX_COLUMNS) - set(available))
    if missing:
        where = f"Dataset at {dataset_path}" if dataset_path is not None else "Dataset"
        _lightning_logger.warning(
            f"{where} is missing index columns: {missing}. "
            "This appears to be a legacy dataset format."
        )
    return available


def read_embedding_dataset(path: Path) -> Any:
    """Open an xarray embedding store (``features``/``projections`` over ``sample``).

    The store is opened lazily (``xarray.open_zarr``) and its index columns (those of
    :data:`INDEX_COLUMNS` it has) become the ``sample`` MultiIndex. For the AnnData stores
    that :class:`EmbeddingWriter` writes, use ``anndata.read_zarr``.

    Parameters
    ----------
    path : Path
        The zarr store.

    Returns
    -------
    xarray.Dataset
    """
    xr = optional_import("xarray", "anndata")
    dataset = xr.open_zarr(path)
    return dataset.set_index(sample=get_available_index_columns(dataset, str(path)))


def _pca(
    source: np.ndarray, n_components: int | None = None, normalize_features: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """PCA as the writer's ``pca_kwargs`` read it (0.1.0: all components by default)."""
    from viscy_utils.evaluation import compute_pca

    n = min(source.shape) if n_components is None else n_components
    coords, ratio = compute_pca(source, n_components=n, scale=normalize_features)
    return coords.astype(source.dtype, copy=False), ratio


def _umap(
    source: np.ndarray, n_components: int = 2, n_neighbors: int = 15, normalize: bool = True
) -> np.ndarray:
    """UMAP as the writer's ``umap_kwargs`` read them (0.1.0 keys)."""
    from viscy_utils.evaluation import compute_umap

    return compute_umap(
        source, n_components=n_components, n_neighbors=n_neighbors, scale=normalize, seed=None
    )


def _phate(
    source: np.ndarray,
    scale_embeddings: bool = False,
    n_components: int = 2,
    knn: int = 5,
    decay: int = 40,
    update_dataset: bool = False,
    **phate_options: Any,
) -> np.ndarray:
    """PHATE as the writer's ``phate_kwargs`` read them (0.1.0 keys; the rest go to PHATE)."""
    phate = optional_import("phate")
    x = np.asarray(source, dtype=np.float64)
    if scale_embeddings:
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    options = {"verbose": 0, **phate_options}
    reducer = phate.PHATE(n_components=n_components, knn=knn, decay=decay, **options)
    return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def write_embedding_dataset(
    output_path: Path,
    features: np.ndarray,
    index_df: pd.DataFrame,
    projections: np.ndarray | None = None,
    embedding_key: Literal["features", "projections"] = "features",
    umap_kwargs: dict[str, Any] | None = None,
    phate_kwargs: dict[str, Any] | None = None,
    pca_kwargs: dict[str, Any] | None = None,
    overwrite: bool = False,
    uns_metadata: dict[str, Any] | None = None,
    *,
    zarr_format: Literal[2, 3] = 2,
    obsm: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write embeddings as an AnnData zarr store (via a temporary path, then rename).

    Layout: ``X`` = the ``embedding_key`` array (dtype kept), the other one in
    ``obsm["X_projections"]`` (``embedding_key="features"``) or ``obsm["X_backbone"]``
    (``"projections"``); ``obsm["X_pca"]`` / ``["X_umap"]`` / ``["X_phate"]`` computed
    from ``X`` when the matching kwargs are non-empty, with the PCA explained variance
    ratio in ``uns["pca"]``; ``obs`` = the index columns, ``uns`` = ``uns_metadata``.

    Parameters
    ----------
    output_path : Path
        The ``.zarr`` store to create.
    features : np.ndarray
        ``(n_cells, D)`` backbone embeddings.
    index_df : pd.DataFrame
        One row per cell (e.g. ``fov_name, track_id, t, id, ...``).
    projections : np.ndarray, optional
        ``(n_cells, P)`` projection-head outputs.
    embedding_key : {"features", "projections"}
        Which array is ``X`` (the reductions are computed from it).
    umap_kwargs : dict, optional
        ``n_components`` (2), ``n_neighbors`` (15), ``normalize`` (True: standardize first).
    phate_kwargs : dict, optional
        ``scale_embeddings`` (False), ``n_components`` (2), ``knn`` (5), ``decay`` (40),
        ``update_dataset`` (ignored); other keys go to ``phate.PHATE``.
    pca_kwargs : dict, optional
        ``n_components`` (None: all), ``normalize_features`` (True: standardize first).
    overwrite : bool
        Replace an existing store.
    uns_metadata : dict, optional
        Entries of ``adata.uns`` (e.g. ``{"data_path": ..., "tracks_path": ...}``).
    zarr_format : {2, 3}
        Zarr format of the store (``anndata.read_zarr`` reads both; 2 is the most widely
        readable by other tools).
    obsm : mapping of str to np.ndarray, optional
        More per-cell arrays (one row per cell) stored under ``obsm`` as given, e.g. a
        second modality's embeddings.

    Returns
    -------
    Path
        ``output_path``.

    Raises
    ------
    FileExistsError
        If the store exists and ``overwrite`` is False.
    ValueError
        If ``embedding_key="projections"`` without projections, or row counts differ.
    TypeError
        For a reduction keyword that is not listed above (0.1.0 skipped a PCA with
        unknown keywords, logging the error).
    """
    ad = optional_import("anndata", "anndata")
    output_path = Path(output_path)
    if output_path.exists() and not overwrite:
        raise FileExistsError(f"{output_path} exists; pass overwrite=True to replace it")
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be (n_cells, D), got {features.shape}")
    if len(index_df) != len(features):
        raise ValueError(f"{len(index_df)} index rows for {len(features)} embeddings")
    if projections is not None:
        projections = np.asarray(projections)
        if len(projections) != len(features):
            raise ValueError(f"{len(projections)} projections for {len(features)} features")
    if embedding_key == "projections":
        if projections is None:
            raise ValueError("embedding_key='projections' needs projections")
        x, other = projections, {"X_backbone": features}
    elif embedding_key == "features":
        x, other = features, {} if projections is None else {"X_projections": projections}
    else:
        raise ValueError(
            f"embedding_key must be 'features' or 'projections', got {embedding_key!r}"
        )
    obs = index_df.reset_index(drop=True).copy()
    for column in obs.columns:
        if obs[column].dtype == object:
            obs[column] = obs[column].astype(str)
    obs.index = obs.index.astype(str)
    adata = ad.AnnData(X=x, obs=obs)
    if uns_metadata:
        adata.uns.update(uns_metadata)
    adata.obsm.update(other)
    for key, values in (obsm or {}).items():
        values = np.asarray(values)
        if len(values) != len(features):
            raise ValueError(f"obsm[{key!r}] has {len(values)} rows for {len(features)} cells")
        adata.obsm[key] = values
    if pca_kwargs:
        coords, ratio = _pca(x, **pca_kwargs)
        adata.obsm["X_pca"] = coords
        adata.uns["pca"] = {"variance_ratio": ratio}
    if umap_kwargs:
        adata.obsm["X_umap"] = _umap(x, **umap_kwargs)
    if phate_kwargs:
        adata.obsm["X_phate"] = _phate(x, **phate_kwargs)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(output_path)
    try:
        with warnings.catch_warnings(), ad.settings.override(zarr_write_format=zarr_format):
            warnings.filterwarnings(
                "ignore", message=".*zarr v2 data will no longer be the default"
            )
            warnings.filterwarnings("ignore", message=".*autosharding will be the default")
            adata.write_zarr(tmp)
        replace_path(tmp, output_path, overwrite)
    finally:
        remove_path(tmp)
    return output_path


class EmbeddingWriter(BasePredictionWriter):
    """Collect ``{"features", "projections", "index"}`` predictions and write AnnData zarr.

    A prediction may also carry ``"obsm": {name: (B, ...) array}`` (the same names in every
    batch): each is concatenated and stored in the store's ``obsm`` (e.g. the embeddings of
    a second modality).

    Parameters
    ----------
    output_path : Path
        The ``.zarr`` store to create. Checked when prediction starts: an
        existing store raises ``FileExistsError`` unless ``overwrite``.
    write_interval : {"batch", "epoch", "batch_and_epoch"}
        The store is written once, at the end of the epoch (``"batch"`` alone is
        rejected).
        With several processes (DDP) every rank's embeddings are gathered on
        global rank 0, which writes the store.
    embedding_key : {"features", "projections"}
        Embedding the optional PCA/UMAP/PHATE are computed from.
    umap_kwargs, phate_kwargs, pca_kwargs : dict, optional
        Compute and store that reduction in ``obsm`` (``{}`` = defaults).
    overwrite : bool
        Replace an existing store.
    """

    def __init__(
        self,
        output_path: Path,
        write_interval: Literal["batch", "epoch", "batch_and_epoch"] = "epoch",
        embedding_key: Literal["features", "projections"] = "features",
        umap_kwargs: dict | None = None,
        phate_kwargs: dict | None = None,
        pca_kwargs: dict | None = None,
        overwrite: bool = False,
    ) -> None:
        if write_interval == "batch":
            raise ValueError(
                "EmbeddingWriter writes one store per prediction epoch; use "
                "write_interval='epoch' (or 'batch_and_epoch')"
            )
        super().__init__(write_interval)
        self.output_path = Path(output_path)
        self.embedding_key = embedding_key
        self.umap_kwargs = umap_kwargs
        self.phate_kwargs = phate_kwargs
        self.pca_kwargs = pca_kwargs
        self.overwrite = overwrite
        #: The run's parsed config (YAML); set by the ``predict`` CLI, stored as provenance.
        self.config_yaml: str | None = None

    def provenance(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, str]:
        """Where the embeddings came from: checkpoint, data, model class and config."""
        datamodule = getattr(trainer, "datamodule", None)
        info = {
            "written_by": f"{type(self).__module__}.{type(self).__name__}",
            "checkpoint": str(getattr(trainer, "ckpt_path", None) or ""),
            "model": f"{type(pl_module).__module__}.{type(pl_module).__name__}",
        }
        for key in ("data_path", "tracks_path"):
            value = getattr(datamodule, key, None)
            if value is not None:
                info[key] = str(value)
        if self.config_yaml:
            info["config"] = self.config_yaml
        return info

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Fail before any prediction runs if the output exists and may not be replaced."""
        if self.output_path.exists() and not self.overwrite:
            raise FileExistsError(
                f"EmbeddingWriter output {self.output_path} exists; set overwrite=True"
            )
        optional_import("anndata", "anndata")

    def write_on_batch_end(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to do per batch: the store is written once, at the end of the epoch."""

    def write_on_epoch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        """Concatenate every batch's embeddings and index and write the store."""
        batches = _flatten_predictions(predictions)
        if not batches:
            _logger.warning("EmbeddingWriter: no predictions to write")
            return
        for i, batch in enumerate(batches):
            missing = {"features", "index"} - set(batch)
            if missing:
                raise KeyError(f"prediction of batch {i} lacks {sorted(missing)}")
        features = np.concatenate([_to_numpy(b["features"]) for b in batches])
        projections = None
        if all(b.get("projections") is not None for b in batches):
            projections = np.concatenate([_to_numpy(b["projections"]) for b in batches])
        obs = index_to_dataframe([b["index"] for b in batches])
        obsm = _concatenate_obsm(batches)
        if trainer.world_size > 1:
            gathered = _gather_to_rank_zero((features, projections, obs, obsm), trainer)
            if gathered is None:
                return
            features, projections, obs, obsm = gathered
        write_embedding_dataset(
            self.output_path,
            features,
            obs,
            projections=projections,
            pca_kwargs=self.pca_kwargs,
            umap_kwargs=self.umap_kwargs,
            phate_kwargs=self.phate_kwargs,
            embedding_key=self.embedding_key,
            overwrite=self.overwrite,
            uns_metadata={
                **collect_data_provenance(trainer),
                "provenance": self.provenance(trainer, pl_module),
            },
            obsm=obsm,
        )
        _logger.info("Wrote %d embeddings to %s", len(features), self.output_path)


def _flatten_predictions(predictions: Sequence[Any]) -> list[Mapping[str, Any]]:
    """Predictions are a list of batch outputs, or (several dataloaders) a list of such lists."""
    out: list[Mapping[str, Any]] = []
    for item in predictions:
        if isinstance(item, Mapping):
            out.append(item)
        elif isinstance(item, list | tuple):
            out.extend(_flatten_predictions(item))
        else:
            raise TypeError(
                "EmbeddingWriter expects predict_step to return a dict with 'features', "
                f"'projections' and 'index', got {type(item).__name__}"
            )
    return out


def _concatenate_obsm(batches: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The ``obsm`` arrays that every batch carries, concatenated in batch order."""
    per_batch = [b.get("obsm") or {} for b in batches]
    keys = list(per_batch[0])
    for i, m in enumerate(per_batch):
        if set(m) != set(keys):
            raise KeyError(
                f"prediction of batch {i} has obsm keys {sorted(m)}, batch 0 has {sorted(keys)}"
            )
    return {k: np.concatenate([_to_numpy(m[k]) for m in per_batch]) for k in keys}


_Part = tuple[np.ndarray, np.ndarray | None, pd.DataFrame, dict[str, np.ndarray]]


def _gather_to_rank_zero(part: _Part, trainer: Trainer) -> _Part | None:
    """Collect every rank's embeddings on global rank 0 (None on the other ranks).

    A ``DistributedSampler`` pads the last batches with repeated samples; rows
    whose index columns repeat exactly are dropped.
    """
    import torch.distributed as dist

    parts: list[Any] = [None] * trainer.world_size
    dist.all_gather_object(parts, part)
    if trainer.global_rank != 0:
        return None
    features = np.concatenate([p[0] for p in parts])
    projections = None
    if all(p[1] is not None for p in parts):
        projections = np.concatenate([p[1] for p in parts])
    obs = pd.concat([p[2] for p in parts], ignore_index=True)
    obsm = {k: np.concatenate([p[3][k] for p in parts]) for k in parts[0][3]}
    if len(obs.columns):
        keep = ~obs.duplicated().to_numpy()
        features, obs = features[keep], obs[keep].reset_index(drop=True)
        projections = None if projections is None else projections[keep]
        obsm = {k: v[keep] for k, v in obsm.items()}
    return features, projections, obs, obsm
