"""viscy-utils (embedding writer, provenance, callbacks, helpers, CLI YAML) and
viscy_data.cell_index against the 0.1.0 releases.

Both sides run the same probe on the same inputs (made here from fixed seeds) and record
plain results: AnnData stores written by ``write_embedding_dataset`` / ``EmbeddingWriter``
(X, obs columns with dtypes and values, obsm keys, dtypes and values, uns), xarray
embedding stores read back, cell-index tables validated, written and read (schema, dtypes,
values, warnings, errors), normalization helpers and the callbacks' YAML ``init_args``
parsed with jsonargparse. Each case names the spec entries it ``covers``.

The 0.1.0 embedding writer needs ``anndata``, which the shared oracle venv lacks (installing
it there would downgrade its pandas): cases marked ``anndata`` run in a sibling venv,
``$VISCY_ORACLE_ANNDATA`` or ``<oracle venv>-anndata`` (``make_oracle_venv.sh`` makes it);
without it they are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _cell_index_probe

_EW = "viscy_utils.callbacks.embedding_writer"
_CI = "viscy_data.cell_index"


def _case(name, kind, covers, **kw):
    return {"name": name, "kind": kind, "covers": covers, **kw}


_PCA2 = {"pca_kwargs": {"n_components": 2}}
CASES = [
    # ---- write_embedding_dataset
    _case("write features+pca", "write", [f"{_EW}.write_embedding_dataset"], anndata=True,
          kw={"embedding_key": "features", **_PCA2, "uns_metadata": {"data_path": "/d.zarr"}},
          fixed="X cast to float32; uns_metadata missing"),
    _case("write projections as X", "write", [f"{_EW}.write_embedding_dataset"], anndata=True,
          kw={"embedding_key": "projections", **_PCA2},
          fixed="X was features, obsm X_backbone missing"),
    _case("write pca no normalize 3", "write", [f"{_EW}.write_embedding_dataset"], anndata=True,
          kw={"pca_kwargs": {"n_components": 3, "normalize_features": False}},
          fixed="normalize_features rejected"),
    _case("write pca_kwargs={} skips", "write", [f"{_EW}.write_embedding_dataset"], anndata=True,
          kw={"pca_kwargs": {}, "umap_kwargs": {}, "phate_kwargs": {}},
          fixed="{} computed PCA with defaults"),
    _case("write pca all components", "write", [f"{_EW}.write_embedding_dataset"], anndata=True,
          kw={"pca_kwargs": {"normalize_features": True}}, fixed="2 components by default"),
    _case("write umap n_neighbors", "write", [f"{_EW}.write_embedding_dataset"], anndata=True,
          kw={"umap_kwargs": {"n_neighbors": 5, "n_components": 3, "normalize": True}},
          random_obsm=["X_umap"]),
    _case("write no projections", "write", [f"{_EW}.write_embedding_dataset"], anndata=True,
          kw={}, no_projections=True),
    _case("write exists", "write_exists", [f"{_EW}.write_embedding_dataset"], anndata=True),
    _case("write pca bad kwarg", "write", [f"{_EW}.write_embedding_dataset"], anndata=True,
          kw={"pca_kwargs": {"random_state": 0}},
          deviation="0.1.0 logs the TypeError and writes no X_pca; ours raises"),
    # ---- EmbeddingWriter
    _case("EmbeddingWriter epoch", "writer", [f"{_EW}.EmbeddingWriter"], anndata=True, kw={},
          obs_index_deviation=True),
    _case("EmbeddingWriter projections pca", "writer", [f"{_EW}.EmbeddingWriter"], anndata=True,
          kw={"embedding_key": "projections", **_PCA2}, obs_index_deviation=True),
    _case("EmbeddingWriter exists", "writer_exists", [f"{_EW}.EmbeddingWriter"], anndata=True),
    _case("EmbeddingWriter write_interval=batch", "writer_batch", [f"{_EW}.EmbeddingWriter"],
          deviation="ours raises at construction; 0.1.0 fails at the first batch"),
    # ---- provenance, xarray stores
    _case("collect_data_provenance", "provenance", [f"{_EW}.collect_data_provenance"],
          fixed="missing"),
    _case("read_embedding_dataset full", "read_xr", [f"{_EW}.read_embedding_dataset",
          f"{_EW}.get_available_index_columns"], drop=[], fixed="missing"),
    _case("read_embedding_dataset legacy", "read_xr", [f"{_EW}.read_embedding_dataset",
          f"{_EW}.get_available_index_columns"], drop=["id", "parent_id", "x"], fixed="missing"),
    _case("read_embedding_dataset no index", "read_xr", [f"{_EW}.read_embedding_dataset"],
          drop="all", fixed="missing"),
    _case("get_available_index_columns", "index_columns", [f"{_EW}.get_available_index_columns"],
          fixed="missing; then data variables counted as index columns"),
    # ---- cell index
    _case("CELL_INDEX_SCHEMA", "schema", [f"{_CI}.CELL_INDEX_SCHEMA"], fixed="missing"),
    _case("validate_cell_index", "validate", [f"{_CI}.validate_cell_index"],
          fixed="returned problems instead of raising; other checks"),
    _case("write/read_cell_index", "cell_rw", [f"{_CI}.write_cell_index", f"{_CI}.read_cell_index"],
          fixed="CSV/any columns; no schema"),
    _case("read_cell_index foreign parquet", "cell_read_raw", [f"{_CI}.read_cell_index"],
          fixed="kept the file's columns"),
    # ---- cell index builders (inputs written by _cell_index_probe.py)
    _case("convert_ops_parquet full", "ops_convert", [f"{_CI}.convert_ops_parquet"],
          variant="full", fixed="missing"),
    _case("convert_ops_parquet minimal", "ops_convert", [f"{_CI}.convert_ops_parquet"],
          variant="minimal", fixed="missing"),
    _case("convert_ops_parquet stored index", "ops_convert", [f"{_CI}.convert_ops_parquet"],
          variant="index", deviation="0.1.0 aligns the row numbers on the file's index: a "
          "Parquet with a stored non-default index gets null cell_ids and fails validation; "
          "ours numbers rows by position"),
    _case("convert_ops_parquet no bbox", "ops_convert", [f"{_CI}.convert_ops_parquet"],
          variant="no bbox", fixed="missing"),
    _case("convert_ops_parquet bad bbox", "ops_convert", [f"{_CI}.convert_ops_parquet"],
          variant="bad bbox", fixed="missing"),
    _case("convert_ops_parquet empty", "ops_convert", [f"{_CI}.convert_ops_parquet"],
          variant="empty", fixed="missing"),
    _case("build_ops_cell_index", "ops_build", [f"{_CI}.build_ops_cell_index"],
          variant="full", kw={"perturbation_map": {"inf": ["C/10"], "x": ["C/10", "A/1"]}},
          fixed="missing"),
    _case("build_ops_cell_index wells order", "ops_build", [f"{_CI}.build_ops_cell_index"],
          variant="full", kw={"wells": ["C/10", "A/1"], "reporter_column": None,
                              "sgRNA_column": None, "min_bbox_size": 0}, fixed="missing"),
    _case("build_ops_cell_index no channel", "ops_build", [f"{_CI}.build_ops_cell_index"],
          variant="no channel", fixed="missing"),
    _case("build_ops_cell_index no bbox", "ops_build", [f"{_CI}.build_ops_cell_index"],
          variant="no bbox", fixed="missing"),
    _case("build_ops_cell_index all filtered", "ops_build", [f"{_CI}.build_ops_cell_index"],
          variant="full", kw={"min_bbox_size": 11}, fixed="missing"),
    _case("build_ops_cell_index no label files", "ops_build", [f"{_CI}.build_ops_cell_index"],
          variant="full", kw={"wells": ["A/1"], "gene_column": "gene"}, fixed="missing"),
    _case("build_ops_cell_index no segmentation id", "ops_build",
          [f"{_CI}.build_ops_cell_index"], variant="no segmentation id", fixed="missing"),
    _case("build_ops_cell_index duplicate", "ops_build", [f"{_CI}.build_ops_cell_index"],
          variant="duplicate", fixed="missing"),
    _case("build_ops_cell_index missing store", "ops_build", [f"{_CI}.build_ops_cell_index"],
          variant="missing store", fixed="missing"),
    _case("build_ops_cell_index well not in plate", "ops_build",
          [f"{_CI}.build_ops_cell_index"], variant="full", kw={"wells": ["Z/9"]},
          deviation="0.1.0 skips it (no label file) or indexes cells of a FOV that does not "
          "exist; ours raises ValueError naming the well"),
    _case("build_timelapse_cell_index", "timelapse", [f"{_CI}.build_timelapse_cell_index"],
          variant="full", fixed="missing"),
    _case("build_timelapse_cell_index filters", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="full",
          kw={"include_wells": ["A/1"], "exclude_fovs": ["A/1/1"], "num_workers": 2},
          fixed="missing"),
    _case("build_timelapse_cell_index channel_names only", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="channel_names only", fixed="missing"),
    _case("build_timelapse_cell_index two experiments", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="two experiments", fixed="missing"),
    _case("build_timelapse_cell_index datasets_root", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="datasets_root", fixed="missing"),
    _case("build_timelapse_cell_index no experiments", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="no experiments", fixed="missing"),
    _case("build_timelapse_cell_index missing tracks", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="missing tracks", fixed="missing"),
    _case("build_timelapse_cell_index two tracks files", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="two tracks files", fixed="missing"),
    _case("build_timelapse_cell_index duplicate names", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="duplicate names",
          deviation="ValueError; 0.1.0 raises pydantic's ValidationError (a ValueError)"),
    _case("build_timelapse_cell_index empty perturbation_wells", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="empty perturbation_wells",
          deviation="ValueError; 0.1.0 raises pydantic's ValidationError (a ValueError)"),
    _case("build_timelapse_cell_index no name", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="no name",
          deviation="ValueError; 0.1.0 raises pydantic's ValidationError (a ValueError)"),
    _case("build_timelapse_cell_index channel not in plate", "timelapse",
          [f"{_CI}.build_timelapse_cell_index"], variant="channel not in plate",
          deviation="0.1.0 indexes a channel the plate lacks; ours raises ValueError"),
    _case("preprocess_cell_index", "preprocess", [f"{_CI}.preprocess_cell_index"],
          variant="full", fixed="missing"),
    _case("preprocess_cell_index focus_channel", "preprocess", [f"{_CI}.preprocess_cell_index"],
          variant="full", kw={"focus_channel": "GFP"}, fixed="missing"),
    _case("preprocess_cell_index in place", "preprocess", [f"{_CI}.preprocess_cell_index"],
          variant="in place", fixed="missing"),
    _case("preprocess_cell_index no normalization", "preprocess",
          [f"{_CI}.preprocess_cell_index"], variant="no normalization", fixed="missing"),
    _case("preprocess_cell_index two wells", "preprocess", [f"{_CI}.preprocess_cell_index"],
          variant="two wells", deviation="0.1.0 looks FOVs up by name alone: every well's "
          "FOV '0' gets the first well's statistics; ours reads each FOV's own"),
    _case("CellIndex keys and types", "typed_dict", ["viscy_data._typing.CellIndex"],
          cls="viscy_data._typing.CellIndex", fixed="z was int; values not sequences"),
    # ---- load_annotation_anndata (variants: _ANNOTATIONS)
    *[_case(f"load_annotation_anndata {v}", "annotation",
            ["viscy_utils.evaluation.annotation.load_annotation_anndata"], anndata=True,
            variant=v, fixed="returned the Series; matched by id and t, or by position; "
            "unmapped categories became NaN") for v in (
            "tracks", "leading slash categories", "ids", "ids over tracks", "no shared keys",
            "division frame", "division frame tight", "division frame without position",
            "string labels", "missing column")],
    # ---- helpers
    _case("normalize helpers", "normalize", ["viscy_utils.normalize.zscore",
          "viscy_utils.normalize.unzscore", "viscy_utils.normalize.hist_clipping"]),
    _case("get_val_stats", "val_stats", ["viscy_utils.mp_utils.get_val_stats"]),
    _case("mp_wrapper", "mp_wrapper", ["viscy_utils.mp_utils.mp_wrapper"]),
    _case("to_numpy/detach_sample/render_images", "images", ["viscy_utils.tensor_utils.to_numpy",
          "viscy_utils.log_images.detach_sample", "viscy_utils.log_images.render_images"],
          fixed="(C, Y, X) arrays, 1st-99th percentile gray grid"),
    _case("configure_adamw_scheduler", "adamw",
          ["viscy_utils.optimizers.configure_adamw_scheduler"]),
    # ---- callbacks from YAML (trainer.callbacks entries of 0.1.0 configs)
    _case("YAML EmbeddingWriter", "yaml", [f"{_EW}.EmbeddingWriter"],
          cls="viscy_utils.callbacks.EmbeddingWriter",
          init={"output_path": "emb.zarr", "pca_kwargs": {"n_components": 4},
                "embedding_key": "projections", "overwrite": True},
          attrs=["output_path", "pca_kwargs", "umap_kwargs", "phate_kwargs", "overwrite",
                 "embedding_key", "interval"]),
    _case("YAML HCSPredictionWriter", "yaml", [
          "viscy_utils.callbacks.prediction_writer.HCSPredictionWriter"],
          fixed="output_store became a Path",
          cls="viscy_utils.callbacks.HCSPredictionWriter",
          init={"output_store": "pred.zarr", "write_input": True},
          attrs=["output_store", "write_input", "overwrite", "interval"]),
    _case("YAML OnlineEvalCallback", "yaml",
          ["viscy_utils.callbacks.online_eval.OnlineEvalCallback"],
          cls="viscy_utils.callbacks.OnlineEvalCallback",
          init={"every_n_epochs": 2, "label_key": "infection_state", "k": 5,
                "knn_eval_mode": "holdout"},
          attrs=["every_n_epochs", "label_key", "k", "track_id_key", "timepoint_key",
                 "knn_eval_mode", "holdout_test_size"]),
    _case("YAML EmbeddingSnapshotCallback", "yaml", [
          "viscy_utils.callbacks.embedding_snapshot.EmbeddingSnapshotCallback"],
          cls="viscy_utils.callbacks.EmbeddingSnapshotCallback",
          init={"output_dir": "snaps", "every_n_epochs": 3, "store_images": False},
          attrs=["output_dir", "every_n_epochs", "store_images"]),
]  # fmt: skip


# ---------------------------------------------------------------- inputs (both sides)


def _embeddings():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 12
    features = rng.normal(size=(n, 6))  # float64 on purpose: the dtype must be kept
    projections = rng.normal(size=(n, 4)).astype(np.float32)
    index = pd.DataFrame(
        {
            "fov_name": ["A/1/0"] * 6 + ["B/2/1"] * 6,
            "track_id": np.arange(n),
            "t": np.tile(np.arange(3, dtype=np.int32), 4),
            "id": np.arange(n) * 10,
            "y": np.linspace(0, 50, n).astype(np.float32),
            "label": [f"cell{i}" for i in range(n)],
        }
    )
    return features, projections, index


def _batches():
    import torch

    out = []
    for s, n in ((0, 3), (1, 2)):
        out.append(
            {
                "features": torch.arange(s * 12, s * 12 + n * 4, dtype=torch.float32).reshape(n, 4)
                / 7,
                "projections": torch.linspace(-1, 1, n * 2).reshape(n, 2) + s,
                "index": {
                    "fov_name": [f"A/{s + 1}/0"] * n,
                    "track_id": torch.arange(n) + s,
                    "t": torch.tensor([0, 1, 2][:n]),
                    "id": torch.arange(n),
                    "parent_track_id": torch.full((n,), -1),
                    "z": torch.zeros(n, dtype=torch.int64),
                    "y": torch.tensor([1.5] * n),
                    "x": torch.tensor([2] * n),
                },
            }
        )
    return out


def _trainer():
    from types import SimpleNamespace as NS

    return NS(
        datamodule=NS(data_path="/data/plate.zarr", tracks_path="/data/tracks"),
        world_size=1,
        global_rank=0,
        is_global_zero=True,
        ckpt_path=None,
    )


def _kind(dtype) -> str:
    """dtype name with the string dtypes of pandas 2 and 3 alike."""
    name = str(dtype)
    return "string" if name in ("object", "str", "string") else name


def _adata(path):
    import anndata as ad
    import numpy as np
    import torch

    a = ad.read_zarr(path)
    obs = {
        c: {"dtype": _kind(a.obs[c].dtype), "values": [str(v) for v in a.obs[c].tolist()]}
        for c in a.obs.columns
    }
    x = np.asarray(a.X)
    return {
        "X": {"dtype": str(x.dtype), "values": torch.from_numpy(x.astype(np.float64))},
        "obs": obs,
        "obs_index": [str(i) for i in a.obs.index],
        "obsm": {
            k: {
                "dtype": str(np.asarray(v).dtype),
                "shape": list(np.shape(v)),
                "values": torch.from_numpy(np.asarray(v, dtype=np.float64)),
            }
            for k, v in a.obsm.items()
        },
        "uns": {k: repr(v) for k, v in a.uns.items()},
    }


def _error(exc) -> dict:
    return {"error": type(exc).__name__, "message": str(exc)[:300]}


def _cell_table(n=4):
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {
            "cell_id": [f"c{i}" for i in range(n)],
            "experiment": "e",
            "store_path": "/s.zarr",
            "tracks_path": "/t",
            "fov": "A/1/0",
            "well": "A/1",
            "y": np.arange(n) * 1.5,
            "x": np.arange(n) * 2.0,
            "z": 0,
            "perturbation": "p",
            "channel_name": "Phase",
            "microscope": "m",
            "t": np.arange(n),
        }
    )


_OBS = {
    "fov_name": ["A/1/0", "A/1/0", "B/1/0", "B/1/0"],
    "track_id": [1, 2, 3, 3],
    "t": [0, 0, 2, 2],
    "id": [10, 11, 13, 14],
    "y": [5.0, 9.0, 20.0, 30.0],
    "x": [5.0, 9.0, 20.0, 30.0],
}
_TRACKS = {"fov_name": ["A/1/0", "A/1/0", "B/1/0"], "track_id": [1, 2, 3], "t": [0, 0, 2]}
_DIVISION = {
    "fov_name": ["A/1/0", "B/1/0", "B/1/0"],
    "track_id": [1, 3, 3],
    "t": [0, 2, 2],
    "y": [0.0, 21.0, 27.0],
    "x": [0.0, 23.0, 31.0],
}
_ANNOTATIONS = {  # variant -> (annotation columns, keyword arguments)
    "tracks": ({**_TRACKS, "s": [0, 1, 2]}, {}),
    "leading slash categories": (
        {**_TRACKS, "fov_name": ["/A/1/0", "/A/1/0", "/B/1/0"], "s": [0, 1, 2]},
        {"categories": {0: "uninf", 1: "inf"}},
    ),
    "ids": ({"fov_name": ["A/1/0", "A/1/0", "B/1/0"], "id": [10, 11, 13], "s": [0, 1, 2]}, {}),
    "ids over tracks": ({**_TRACKS, "id": [90, 91, 13], "s": [0, 1, 2]}, {}),
    "no shared keys": ({"fov_name": ["A/1/0"], "track_id": [1], "s": [0]}, {}),
    "division frame": ({**_DIVISION, "s": [0, 1, 2]}, {}),
    "division frame tight": ({**_DIVISION, "s": [0, 1, 2]}, {"spatial_tolerance": 1.0}),
    "division frame without position": (
        {k: v for k, v in _DIVISION.items() if k not in ("y", "x")} | {"s": [0, 1, 2]},
        {},
    ),
    "string labels": ({**_TRACKS, "s": ["a", "b", None]}, {}),
    "missing column": (_TRACKS, {}),
}


def _annotation_probe(case, tmp):
    import anndata as ad
    import numpy as np
    import pandas as pd

    from viscy_utils.evaluation.annotation import load_annotation_anndata

    columns, kw = _ANNOTATIONS[case["variant"]]
    obs = pd.DataFrame(_OBS).set_axis([f"c{i}" for i in range(4)])
    adata = ad.AnnData(X=np.zeros((4, 2), dtype=np.float32), obs=obs)
    path = tmp / "annotations.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    try:
        result = load_annotation_anndata(adata, str(path), "s", **kw)
    except Exception as exc:
        return _error(exc)
    column = adata.obs["s"]
    return {
        "returns_adata": result is adata,
        "dtype": "category" if str(column.dtype) == "category" else "other",
        "values": [None if _isna(v) else repr(float(v)) if isinstance(v, (int, float))
                   else str(v) for v in column.tolist()],
        "obs_columns": list(adata.obs.columns),
    }  # fmt: skip


def _annotation(tp) -> str:
    """A type as text, the same for ``typing.Union[int, typing.Sequence[int]]`` and
    ``int | collections.abc.Sequence[int]``."""
    import typing

    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is None:
        return getattr(tp, "__name__", repr(tp))
    if not hasattr(origin, "__name__") or origin.__name__ in ("Union", "UnionType"):
        return " | ".join(_annotation(a) for a in args)
    return f"{origin.__name__}[{', '.join(_annotation(a) for a in args)}]"


def _isna(value) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _frame(df) -> dict:
    return {
        "columns": list(df.columns),
        "dtypes": {c: _kind(df[c].dtype) for c in df.columns},
        "values": {c: [None if _isna(v) else str(v) for v in df[c].tolist()] for c in df.columns},
    }


def _capture_lightning_log(fn):
    import logging

    records = []

    class _H(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("lightning.pytorch")
    handler = _H(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        return fn(), records
    finally:
        logger.removeHandler(handler)


# ---------------------------------------------------------------- the probe (both sides)


def probe(case):
    import warnings

    import numpy as np
    import torch

    warnings.simplefilter("ignore")
    kind = case["kind"]
    tmp = Path(tempfile.mkdtemp(prefix="compat-utils-"))
    if kind in _cell_index_probe.KINDS:
        return _cell_index_probe.probe(case, tmp)
    if kind == "annotation":
        return _annotation_probe(case, tmp)
    if kind == "typed_dict":
        from _common import resolve

        cls = resolve(case["cls"])
        return {
            "annotations": {k: _annotation(v) for k, v in cls.__annotations__.items()},
            "required": sorted(cls.__required_keys__),
            "optional": sorted(cls.__optional_keys__),
        }
    if kind in ("write", "write_exists"):
        from viscy_utils.callbacks.embedding_writer import write_embedding_dataset

        features, projections, index = _embeddings()
        if case.get("no_projections"):
            projections = None
        path = tmp / "e.zarr"
        try:
            write_embedding_dataset(path, features, index, projections, **case.get("kw", {}))
            if kind == "write_exists":
                write_embedding_dataset(path, features, index)
        except Exception as exc:
            return _error(exc)
        out = _adata(path)
        for key in case.get("random_obsm", []):  # not seeded in 0.1.0: shape and dtype only
            out["obsm"][key].pop("values", None)
        return out
    if kind in ("writer", "writer_exists"):
        from viscy_utils.callbacks.embedding_writer import EmbeddingWriter

        path = tmp / "w.zarr"
        trainer = _trainer()
        try:
            writer = EmbeddingWriter(path, **case.get("kw", {}))
            writer.on_predict_start(trainer, None)
            writer.write_on_epoch_end(trainer, None, _batches(), [])
            if kind == "writer_exists":
                EmbeddingWriter(path).on_predict_start(trainer, None)
        except Exception as exc:
            return _error(exc)
        return _adata(path)
    if kind == "writer_batch":
        from viscy_utils.callbacks.embedding_writer import EmbeddingWriter

        try:
            EmbeddingWriter(tmp / "b.zarr", write_interval="batch")
        except Exception as exc:
            return _error(exc)
        return {"constructed": True}
    if kind == "provenance":
        from pathlib import Path as P
        from types import SimpleNamespace as NS

        from viscy_utils.callbacks.embedding_writer import collect_data_provenance

        trainers = [
            NS(datamodule=NS(data_path=P("/a/b.zarr"), tracks_path="/t")),
            NS(datamodule=NS(data_path=None, tracks_path="/t")),
            NS(datamodule=NS(data_path=["a", "b"])),
            NS(datamodule=NS(other=1)),
            NS(datamodule=None),
            NS(),
        ]
        return {"value": [collect_data_provenance(t) for t in trainers]}
    if kind == "read_xr":
        import xarray as xr

        from viscy_utils.callbacks.embedding_writer import (
            get_available_index_columns,
            read_embedding_dataset,
        )

        n = 5
        names = ["fov_name", "track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"]
        drop = names if case["drop"] == "all" else case["drop"]
        coords = {c: ("sample", np.arange(n) * 2) for c in reversed(names) if c not in drop}
        if "fov_name" in coords:
            coords["fov_name"] = ("sample", [f"A/1/{i}" for i in range(n)])
        rng = np.random.default_rng(1)
        ds = xr.Dataset(
            {
                "features": (("sample", "feature"), rng.normal(size=(n, 3))),
                "projections": (("sample", "projection"), rng.normal(size=(n, 2))),
            },
            coords=coords,
        )
        path = tmp / "x.zarr"
        ds.to_zarr(path, zarr_format=2)
        try:
            read, log = _capture_lightning_log(lambda: read_embedding_dataset(path))
        except Exception as exc:
            return _error(exc)
        cols, log2 = _capture_lightning_log(lambda: get_available_index_columns(read))
        return {
            "index_names": list(read.indexes["sample"].names),
            "features": torch.from_numpy(np.asarray(read["features"].values)),
            "projections": torch.from_numpy(np.asarray(read["projections"].values)),
            "log": [m.replace(str(path), "PATH") for m in log],
            "columns": cols,
            "log2": log2,
            "fov_name": [str(v) for v in read["fov_name"].values] if "fov_name" in read else None,
        }
    if kind == "index_columns":
        import xarray as xr

        from viscy_utils.callbacks.embedding_writer import get_available_index_columns

        full = xr.Dataset(
            coords={c: ("s", [1]) for c in ["x", "t", "fov_name", "z", "track_id", "other"]}
        )
        data_var = xr.Dataset({"t": ("s", [1]), "fov_name": ("s", ["a"])})
        out = []
        for ds, path in ((full, "p.zarr"), (full, None), (data_var, None), (xr.Dataset(), None)):
            cols, log = _capture_lightning_log(
                lambda ds=ds, path=path: get_available_index_columns(ds, path)
            )
            out.append({"columns": cols, "log": log})
        return {"value": out}
    if kind == "schema":
        from viscy_data.cell_index import CELL_INDEX_SCHEMA

        return {
            "type": type(CELL_INDEX_SCHEMA).__name__,
            "fields": [(f.name, str(f.type), f.nullable) for f in CELL_INDEX_SCHEMA],
            "metadata": repr(CELL_INDEX_SCHEMA.metadata),
        }
    if kind == "validate":
        from viscy_data.cell_index import validate_cell_index

        base = _cell_table()
        dup = base.copy()
        dup.loc[[1, 2], "cell_id"] = "c0"
        chans = dup.copy()
        chans.loc[[1, 2], "channel_name"] = ["GFP", "RFP"]
        nulls = base.assign(gene_name=None, tracks_path=None, extra=None)
        nulls["t"] = np.nan
        tables = {
            "valid": (base, False),
            "strict": (base, True),
            "strict full": (base.assign(**{c: 1 for c in _SCHEMA_NAMES if c not in base}), True),
            "no fov+cell_id": (base.drop(columns=["fov", "cell_id"]), False),
            "no microscope": (base.drop(columns=["microscope"]), False),
            "dup": (dup, False),
            "dup other channels": (chans, False),
            "all null": (nulls, False),
            "empty": (base.iloc[:0], False),
            "negative y, nan x, float t": (base.assign(y=-1.0, x=np.nan, t=0.5), False),
        }
        out = {}
        for label, (df, strict) in tables.items():
            try:
                out[label] = sorted(validate_cell_index(df, strict=strict))  # 0.1.0: set order
            except Exception as exc:
                out[label] = _error(exc)
        return {"value": out}
    if kind == "cell_rw":
        from viscy_data.cell_index import read_cell_index, write_cell_index

        out = {}
        df = _cell_table().assign(unrelated=1)
        write_cell_index(df, tmp / "a.parquet")
        out["roundtrip"] = _frame(read_cell_index(tmp / "a.parquet"))
        write_cell_index(_cell_table().drop(columns=["fov"]), tmp / "b.parquet")
        out["filled"] = _frame(read_cell_index(tmp / "b.parquet"))
        dup = _cell_table()
        dup.loc[1, "cell_id"] = "c0"
        for label, fn in {
            "dup": lambda: write_cell_index(dup, tmp / "c.parquet"),
            "dup unvalidated": lambda: write_cell_index(dup, tmp / "d.parquet", validate=False),
            "float z": lambda: write_cell_index(_cell_table().assign(z=1.7), tmp / "e.parquet"),
            "missing": lambda: read_cell_index(tmp / "nope.parquet"),
        }.items():
            try:
                fn()
                out[label] = "ok"
            except Exception as exc:
                out[label] = type(exc).__name__
        out["files"] = sorted(p.name for p in tmp.iterdir() if not p.name.startswith("."))
        return {"value": out}
    if kind == "cell_read_raw":
        from viscy_data.cell_index import read_cell_index

        _cell_table().drop(columns=["fov"]).assign(extra=2).to_parquet(tmp / "raw.parquet")
        return {"value": _frame(read_cell_index(tmp / "raw.parquet"))}
    if kind == "normalize":
        from viscy_utils.normalize import hist_clipping, unzscore, zscore

        x = np.random.default_rng(2).normal(3.0, 2.0, size=(4, 16, 16)).astype(np.float32)
        return {
            "zscore": torch.from_numpy(np.asarray(zscore(x), dtype=np.float64)),
            "zscore given": torch.from_numpy(np.asarray(zscore(x, 1.0, 4.0), dtype=np.float64)),
            "unzscore": torch.from_numpy(np.asarray(unzscore(x, 2.0, 0.5), dtype=np.float64)),
            "hist_clipping": torch.from_numpy(np.asarray(hist_clipping(x), dtype=np.float64)),
            "hist_clipping 10 90": torch.from_numpy(
                np.asarray(hist_clipping(x, 10, 90), dtype=np.float64)
            ),
            "zscore torch": zscore(torch.from_numpy(x)).double(),
        }
    if kind == "val_stats":
        from viscy_utils.mp_utils import get_val_stats

        rng = np.random.default_rng(3)
        samples = {
            "uint16": rng.integers(0, 4000, size=500).astype(np.uint16),
            "float32": rng.normal(size=500).astype(np.float32),
            "float64": rng.normal(size=500),
        }
        return {k: {n: float(v) for n, v in get_val_stats(s).items()} for k, s in samples.items()}
    if kind == "mp_wrapper":
        from viscy_utils.mp_utils import mp_wrapper

        return {"value": [list(r) for r in mp_wrapper(divmod, [(7, 2), (9, 4), (1, 5)], 1)]}
    if kind == "images":
        from viscy_utils.log_images import detach_sample, render_images
        from viscy_utils.tensor_utils import to_numpy

        g = torch.Generator().manual_seed(4)
        imgs = [torch.rand(3, 1, 5, 8, 8, generator=g) for _ in range(2)]
        samples = detach_sample(imgs, 2)
        grid = render_images(samples)
        return {
            "to_numpy": torch.from_numpy(np.asarray(to_numpy(imgs[0][0]), dtype=np.float64)),
            "detach": [
                [torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in s] for s in samples
            ],
            "grid": torch.from_numpy(np.asarray(grid, dtype=np.float64)),
            "grid_dtype": str(np.asarray(grid).dtype),
        }
    if kind == "adamw":
        from types import SimpleNamespace as NS

        from viscy_utils.optimizers import configure_adamw_scheduler

        out = {}
        for schedule in ("WarmupCosine", "Constant", "bogus"):
            model = torch.nn.Linear(2, 1)
            trainer = NS(max_epochs=10, estimated_stepping_batches=10)
            module = NS(trainer=trainer, _trainer=trainer)
            try:
                opts, scheds = configure_adamw_scheduler(module, model, 0.1, schedule)
            except Exception as exc:
                out[schedule] = _error(exc)
                continue
            sched = scheds[0]["scheduler"] if isinstance(scheds[0], dict) else scheds[0]
            lrs = []
            for _ in range(10):
                lrs.append(opts[0].param_groups[0]["lr"])
                opts[0].step()
                sched.step()
            out[schedule] = {"optimizer": type(opts[0]).__name__, "lrs": lrs}
        return out
    if kind == "yaml":
        import yaml
        from _common import resolve
        from jsonargparse import ArgumentParser

        cls = resolve(case["cls"])
        parser = ArgumentParser(exit_on_error=False)
        parser.add_argument("--callback", type=cls)
        config = yaml.safe_dump(
            {"callback": {"class_path": case["cls"], "init_args": case["init"]}}
        )
        try:
            cfg = parser.parse_string(config)
            obj = parser.instantiate_classes(cfg)["callback"]
        except Exception as exc:
            return _error(exc)
        return {"value": {a: repr(getattr(obj, a, "<absent>")) for a in case["attrs"]}}
    raise ValueError(f"unknown kind {kind}")


_SCHEMA_NAMES = [
    "cell_id", "experiment", "store_path", "tracks_path", "fov", "well", "y", "x", "z",
    "perturbation", "channel_name", "t", "track_id", "global_track_id", "lineage_id",
    "parent_track_id", "hours_post_perturbation", "interval_minutes", "gene_name", "reporter",
    "sgRNA", "microscope", "marker", "organelle", "pixel_size_xy_um", "pixel_size_z_um",
    "T_shape", "C_shape", "Z_shape", "Y_shape", "X_shape", "z_focus_mean", "norm_mean",
    "norm_std", "norm_median", "norm_iqr", "norm_max", "norm_min",
]  # fmt: skip


# ---------------------------------------------------------------- sides


def _anndata_oracle() -> str | None:
    explicit = os.environ.get("VISCY_ORACLE_ANNDATA")
    if explicit:
        return explicit
    sibling = Path(sys.prefix + "-anndata") / "bin" / "python"
    return str(sibling) if sibling.exists() else None


_ANNDATA_RESULTS: dict[str, dict] = {}


def _run_in_anndata_oracle(python: str) -> dict[str, dict]:
    """Every ``anndata`` case (of COMPAT_ONLY) in one run of the sibling venv."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.pt"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        proc = subprocess.run(
            [python, __file__, str(out)], env=env, capture_output=True, text=True, timeout=1800
        )
        if proc.returncode:
            raise RuntimeError(f"anndata oracle failed: {proc.stderr[-1500:]}")
        return torch.load(out, weights_only=False)


def oracle(case):
    if case.get("anndata"):
        try:
            import anndata  # noqa: F401
        except ImportError:
            python = _anndata_oracle()
            if python is None:
                return {"skip": "0.1.0 with anndata not installed (VISCY_ORACLE_ANNDATA)"}
            if not _ANNDATA_RESULTS:
                _ANNDATA_RESULTS.update(_run_in_anndata_oracle(python))
            return _ANNDATA_RESULTS[case["name"]]
    return probe(case)


def _without_messages(value):
    """Errors compare by type: their messages are ours to word."""
    if isinstance(value, dict):
        return {k: _without_messages(v) for k, v in value.items() if k != "message"}
    if isinstance(value, list):
        return [_without_messages(v) for v in value]
    return value


def _same(a, b) -> tuple[bool, str]:
    from _common import max_abs_diff

    diff = max_abs_diff(_without_messages(a), _without_messages(b))
    if diff is None:
        return False, "structure or values differ"
    if diff > 1e-5:
        return False, f"values differ (max abs diff {diff:.3g})"
    return True, ""


def _compare(case, mine, ref) -> tuple[bool, str]:
    if "error" in ref or "error" in mine:
        same = mine.get("error") == ref.get("error")
        return same, f"ours {mine.get('error', 'no error')}, 0.1.0 {ref.get('error', 'no error')}"
    if case["kind"] in ("write", "writer", "writer_exists", "write_exists"):
        # ours stores extra uns entries (pca variance ratio, run provenance): 0.1.0's must match
        extra = set(mine["uns"]) - set(ref["uns"])
        if not extra <= {"pca", "provenance"}:
            return False, f"uns keys: ours {sorted(mine['uns'])}, 0.1.0 {sorted(ref['uns'])}"
        mine = {**mine, "uns": {k: v for k, v in mine["uns"].items() if k in ref["uns"]}}
        if case.get("obs_index_deviation") and mine["obs_index"] != ref["obs_index"]:
            mine = {**mine, "obs_index": ref["obs_index"]}
            case["deviation_note"] = (
                "0.1.0 repeats each batch's obs names ('0', '1', '2', '0', '1'); ours numbers "
                "the cells 0..n-1 (unique obs names; COMPATIBILITY.md)"
            )
        same, note = _same(mine, ref)
        if not same:
            for key in ("X", "obs", "obs_index", "obsm", "uns"):
                if not _same(mine[key], ref[key])[0]:
                    return False, f"{key}: ours {_brief(mine[key])}; 0.1.0 {_brief(ref[key])}"
        return same, note
    return _same(mine, ref)


def _brief(value) -> str:
    from _common import structure

    return str(structure(value))[:250]


def ours(case, ref):
    covers = case["covers"]
    row = {"class": covers[0], "config": case["name"], "covers": covers}
    if "skip" in ref:
        row.update(status="skip", note=ref["skip"])
        return row
    try:
        mine = probe(case)
    except Exception as exc:
        mine = _error(exc)
    same, note = _compare(case, mine, ref)
    if same and case.get("deviation_note"):
        row.update(status="deviation", note=case["deviation_note"])
    elif case.get("deviation"):
        row.update(
            status="deviation" if not same else "ok", note=case["deviation"] if not same else ""
        )
    elif not same:
        row.update(
            status="DIFF", note=(f"open: {case['open']}; " if case.get("open") else "") + note[:500]
        )
    elif case.get("fixed"):
        row.update(status="fixed", note=f"was: {case['fixed']}")
    else:
        row.update(status="ok", note="")
    return row


def _probe_or_error(case) -> dict:
    try:
        return probe(case)
    except Exception as exc:
        return _error(exc)


if __name__ == "__main__":  # the anndata cases in the anndata oracle: utils.py OUT.pt
    import time

    import torch

    only = os.environ.get("COMPAT_ONLY")
    results = {}
    for case in CASES:
        if case.get("anndata") and (not only or only in case["name"]):
            start = time.perf_counter()
            results[case["name"]] = _probe_or_error(case)
            print(f"{case['name']}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    torch.save(results, sys.argv[1])
