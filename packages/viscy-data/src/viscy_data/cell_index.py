"""Cell index tables: one row per cell observation (and channel), pooled across experiments.

A cell index is a flat Parquet table with the columns of :data:`CELL_INDEX_SCHEMA` (the
0.1.0 contract): where a cell is (``experiment, store_path, tracks_path, fov, well, y, x,
z``), how it is grouped (``perturbation, channel_name, microscope``) and, where known, its
time-lapse, optical-pooled-screen, imaging and normalization columns. Parquet needs
``pyarrow`` (``pip install 'viscy-data[cellindex]'``); it is imported on first use.

Builders write an index from the sources 0.1.0 built them from: a time-lapse collection
YAML (:func:`build_timelapse_cell_index`), optical-pooled-screen label tables beside a plate
(:func:`build_ops_cell_index`) or a merged OPS Parquet (:func:`convert_ops_parquet`);
:func:`preprocess_cell_index` adds each row's normalization statistics and focus plane from
the plate's metadata.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viscy_data._imports import optional_import
from viscy_data._typing import CELL_INDEX_CORE_COLUMNS, CELL_INDEX_GROUPING_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CELL_INDEX_SCHEMA",  # noqa: F822 (built on first access, see __getattr__)
    "build_ops_cell_index",
    "build_timelapse_cell_index",
    "convert_ops_parquet",
    "preprocess_cell_index",
    "read_cell_index",
    "validate_cell_index",
    "write_cell_index",
]

_logger = logging.getLogger(__name__)

#: Column name -> Arrow type name of the schema (every column nullable), in file order.
CELL_INDEX_COLUMN_TYPES: dict[str, str] = {
    "cell_id": "string",
    "experiment": "string",
    "store_path": "string",
    "tracks_path": "string",
    "fov": "string",
    "well": "string",
    "y": "float32",
    "x": "float32",
    "z": "int16",
    "perturbation": "string",
    "channel_name": "string",
    "t": "int32",
    "track_id": "int32",
    "global_track_id": "string",
    "lineage_id": "string",
    "parent_track_id": "int32",
    "hours_post_perturbation": "float32",
    "interval_minutes": "float32",
    "gene_name": "string",
    "reporter": "string",
    "sgRNA": "string",
    "microscope": "string",
    "marker": "string",
    "organelle": "string",
    "pixel_size_xy_um": "float32",
    "pixel_size_z_um": "float32",
    "T_shape": "int32",
    "C_shape": "int32",
    "Z_shape": "int32",
    "Y_shape": "int32",
    "X_shape": "int32",
    "z_focus_mean": "float32",
    "norm_mean": "float32",
    "norm_std": "float32",
    "norm_median": "float32",
    "norm_iqr": "float32",
    "norm_max": "float32",
    "norm_min": "float32",
}

#: Columns a cell index must have (the rest may be absent; they are written as nulls).
CELL_INDEX_REQUIRED_COLUMNS: list[str] = [*CELL_INDEX_CORE_COLUMNS, *CELL_INDEX_GROUPING_COLUMNS]

#: Low-cardinality string columns that :func:`read_cell_index` returns as categoricals.
_CATEGORICAL = (
    "experiment",
    "store_path",
    "channel_name",
    "reporter",
    "microscope",
    "marker",
    "organelle",
)


def _schema():
    pa = optional_import("pyarrow", "cellindex")
    return pa.schema(
        [(name, getattr(pa, kind)()) for name, kind in CELL_INDEX_COLUMN_TYPES.items()]
    )


def __getattr__(name: str) -> Any:
    # CELL_INDEX_SCHEMA is a pyarrow.Schema: built on first access so that importing this
    # module does not need pyarrow
    if name == "CELL_INDEX_SCHEMA":
        schema = _schema()
        globals()[name] = schema
        return schema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validate_cell_index(df: pd.DataFrame, *, strict: bool = False) -> list[str]:
    """Check a cell index against the schema: raise on errors, return warnings.

    Parameters
    ----------
    df : pd.DataFrame
        The table.
    strict : bool
        Require every schema column, not only :data:`CELL_INDEX_REQUIRED_COLUMNS`.

    Returns
    -------
    list[str]
        Warnings, in schema order: schema columns whose values are all null.

    Raises
    ------
    ValueError
        If required columns are missing (all of them named, sorted), or the pair
        ``(cell_id, channel_name)`` repeats.
    """
    required = list(CELL_INDEX_COLUMN_TYPES) if strict else CELL_INDEX_REQUIRED_COLUMNS
    missing = sorted(set(required) - set(df.columns))
    if missing:
        raise ValueError(f"Missing required columns: {missing}")
    n_dup = int(df.duplicated(subset=["cell_id", "channel_name"]).sum())
    if n_dup:
        raise ValueError(f"(cell_id, channel_name) must be unique, found {n_dup} duplicates")
    if len(df) == 0:
        return []
    return [
        f"column {name!r} is all null"
        for name in CELL_INDEX_COLUMN_TYPES
        if name in df.columns and df[name].isna().all()
    ]


def _conform(table):
    """``table`` with exactly the schema's columns, in order and of its types (nulls added)."""
    pa = optional_import("pyarrow", "cellindex")
    schema = _schema()
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(len(table), field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def read_cell_index(path: str | Path) -> pd.DataFrame:
    """Read a cell index Parquet file with the schema's columns and dtypes.

    Every schema column is returned (absent ones as nulls) and other columns are dropped.
    Floats are float32; integer columns keep their width, or become float64 where they hold
    nulls; ``experiment, store_path, channel_name, reporter, microscope, marker,
    organelle`` are categoricals.

    Parameters
    ----------
    path : str or Path
        A Parquet file.

    Returns
    -------
    pd.DataFrame

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    """
    pq = optional_import("pyarrow.parquet", "cellindex")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(str(path))
    df = _conform(pq.read_table(path)).to_pandas()
    for name in _CATEGORICAL:
        df[name] = df[name].astype("category")
    return df


def write_cell_index(df: pd.DataFrame, path: str | Path, *, validate: bool = True) -> None:
    """Write a cell index as Parquet with the schema, atomically (temporary file, rename).

    Schema columns the table lacks are written as nulls, other columns are dropped, and
    values are cast to the schema's types (a value that does not fit raises
    ``pyarrow.ArrowInvalid``). ``df`` itself is not changed.

    Parameters
    ----------
    df : pd.DataFrame
        The table.
    path : str | Path
        Destination Parquet file (parent folders are created).
    validate : bool
        Run :func:`validate_cell_index` (after adding the absent columns) and refuse to
        write a table it rejects.
    """
    pa = optional_import("pyarrow", "cellindex")
    pq = optional_import("pyarrow.parquet", "cellindex")
    path = Path(path)
    full = df.reset_index(drop=True)
    absent = [name for name in CELL_INDEX_COLUMN_TYPES if name not in full.columns]
    if absent:
        full = full.assign(**dict.fromkeys(absent))
    if validate:
        validate_cell_index(full)
    table = pa.Table.from_pandas(
        full[list(CELL_INDEX_COLUMN_TYPES)], schema=_schema(), preserve_index=False
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- builders


def _with_schema_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the schema columns it lacks (as nulls), after its own columns."""
    absent = [name for name in CELL_INDEX_COLUMN_TYPES if name not in df.columns]
    if not absent:
        return df
    import pandas as pd

    nulls = pd.DataFrame({name: [None] * len(df) for name in absent}, index=df.index, dtype=object)
    return pd.concat([df, nulls], axis=1)


def _write_frames(
    frames: list[pd.DataFrame], output_path: str | Path, keep_empty: bool = False
) -> pd.DataFrame:
    """Concatenate a builder's tables, add the schema columns, write. Without tables (or,
    unless ``keep_empty``, without rows) the result has the schema's columns only."""
    import pandas as pd

    if not keep_empty:
        frames = [f for f in frames if len(f)]
    if frames:
        out = _with_schema_columns(pd.concat(frames, ignore_index=True))
    else:
        out = pd.DataFrame({name: pd.Series([], dtype=object) for name in CELL_INDEX_COLUMN_TYPES})
    write_cell_index(out, output_path)
    return out


def _parse_bboxes(values, column: str, source: str):
    """``"(ymin, xmin, ymax, xmax)"`` strings -> ``(n, 4)`` float array (brackets and
    surrounding whitespace allowed, further values ignored); ``ValueError`` naming the
    row and the value otherwise."""
    import numpy as np

    out = np.empty((len(values), 4), dtype=np.float64)
    for i, value in enumerate(values):
        try:
            if not isinstance(value, str):
                raise TypeError
            parts = value.strip().strip("()[]").split(",")
            if len(parts) < 4:
                raise IndexError
            out[i] = [float(p) for p in parts[:4]]
        except (TypeError, ValueError, IndexError):
            raise ValueError(
                f"{source}: row {i} of column {column!r} is not a bounding box "
                f"'(ymin, xmin, ymax, xmax)': {value!r}"
            ) from None
    return out


def _require_columns(df: pd.DataFrame, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{source} lacks required columns {missing} (has {list(df.columns)})")


def convert_ops_parquet(
    ops_parquet_path: str | Path,
    output_path: str | Path,
    store_root: str = "/hpc/projects/icd.fast.ops",
    store_suffix: str = "3-assembly/phenotyping_v3.zarr",
) -> pd.DataFrame:
    """Convert a merged optical-pooled-screen Parquet into a cell index.

    Each ``store_key`` of the input is an experiment with the plate
    ``{store_root}/{store_key}/{store_suffix}``. Each row is one cell observation:

    - ``cell_id`` (also ``global_track_id`` and ``lineage_id``) is ``{store_key}_{row}``,
      ``row`` the row's position in the file; ``track_id`` is that position;
    - the input's ``well`` is split at its last ``/`` into ``well`` and ``fov``
      (``"A/1/0"`` -> ``"A/1"``, ``"0"``; a value without ``/`` is both);
    - ``y``, ``x`` are the centre of ``bbox`` (``"(ymin, xmin, ymax, xmax)"``), ``z``, ``t``
      are 0, ``parent_track_id`` -1, ``hours_post_perturbation`` and ``interval_minutes`` 0;
    - ``perturbation`` and ``gene_name`` are ``gene_name`` with nulls as ``"NTC"``
      (``"unknown"`` and null without that column); ``reporter`` and ``sgRNA`` are copied,
      ``marker`` is ``reporter``, ``channel_name`` is ``channel`` (``""`` without those);
      ``tracks_path`` and ``microscope`` are ``""``.

    Parameters
    ----------
    ops_parquet_path : str | Path
        The merged Parquet, with at least ``store_key``, ``well`` and ``bbox``.
    output_path : str | Path
        The cell index to write (atomically).
    store_root : str
        Folder of the experiments' stores.
    store_suffix : str
        Path of the plate inside an experiment's folder.

    Returns
    -------
    pd.DataFrame
        The index as written, with the schema's columns.

    Raises
    ------
    KeyError
        If a required column is missing.
    ValueError
        For a null ``store_key`` or ``well``, a ``bbox`` that does not parse, or repeated
        ``(cell_id, channel_name)`` pairs.
    """
    import numpy as np
    import pandas as pd

    source = str(ops_parquet_path)
    raw = pd.read_parquet(ops_parquet_path).reset_index(drop=True)
    _require_columns(raw, ["store_key", "well", "bbox"], source)
    for column in ("store_key", "well"):
        nulls = np.flatnonzero(raw[column].isna().to_numpy())
        if len(nulls):
            raise ValueError(f"{source}: column {column!r} is null in rows {nulls[:10].tolist()}")
    n = len(raw)
    keys = raw["store_key"].astype(str).to_numpy(dtype=object)
    wells = raw["well"].astype(str)
    boxes = _parse_bboxes(raw["bbox"].tolist(), "bbox", source)
    cell_ids = np.array([f"{k}_{i}" for i, k in enumerate(keys)], dtype=object)
    if "gene_name" in raw.columns:
        genes = raw["gene_name"].astype(object).where(raw["gene_name"].notna(), "NTC")
        genes = genes.map(str).to_numpy(dtype=object)
        perturbation = genes
    else:
        genes = np.full(n, None, dtype=object)
        perturbation = np.full(n, "unknown", dtype=object)

    def copied(column: str, default):
        if column in raw.columns:
            return raw[column].astype(object).where(raw[column].notna(), None).to_numpy()
        return np.full(n, default, dtype=object)

    reporter = copied("reporter", None)
    out = pd.DataFrame(
        {
            "experiment": keys,
            "store_path": [f"{store_root}/{k}/{store_suffix}" for k in keys],
            "fov": wells.str.rsplit("/", n=1).str[-1].to_numpy(dtype=object),
            "well": wells.str.rsplit("/", n=1).str[0].to_numpy(dtype=object),
            "y": ((boxes[:, 0] + boxes[:, 2]) / 2).astype(np.float32),
            "x": ((boxes[:, 1] + boxes[:, 3]) / 2).astype(np.float32),
            "z": np.zeros(n, dtype=np.int16),
            "channel_name": copied("channel", ""),
            "marker": reporter if "reporter" in raw.columns else np.full(n, "", dtype=object),
            "organelle": np.full(n, None, dtype=object),
            "gene_name": genes,
            "reporter": reporter,
            "sgRNA": copied("sgRNA", None),
            "perturbation": perturbation,
            "t": pd.array(np.zeros(n, dtype=np.int32), dtype="Int32"),
            "track_id": pd.array(np.arange(n, dtype=np.int32), dtype="Int32"),
            "cell_id": cell_ids,
            "global_track_id": cell_ids,
            "lineage_id": cell_ids,
            "parent_track_id": pd.array(np.full(n, -1, dtype=np.int32), dtype="Int32"),
            "hours_post_perturbation": np.zeros(n, dtype=np.float32),
            "tracks_path": np.full(n, "", dtype=object),
            "interval_minutes": np.zeros(n, dtype=np.float32),
            "microscope": np.full(n, "", dtype=object),
        }
    )
    out = _with_schema_columns(out)
    write_cell_index(out, output_path)
    return out


def _label_file(labels_path: Path, well: str) -> Path | None:
    stem = f"{well.replace('/', '')}_linked_pheno_iss"
    for suffix in (".parquet", ".csv"):
        candidate = labels_path / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _pixel_sizes(position) -> tuple[float | None, float | None]:
    """``(xy, z)`` micrometres per pixel from a position's scale transform (xy: the Y scale,
    as 0.1.0 reads it)."""
    try:
        scale = position.scale
    except Exception:  # positions without a scale transform: unknown
        return None, None
    return float(scale[-2]), float(scale[-3])


def build_ops_cell_index(
    store_path: str | Path,
    labels_path: str | Path,
    experiment_name: str,
    output_path: str | Path,
    wells: list[str] | None = None,
    channel_column: str = "channel",
    gene_column: str = "gene_name",
    reporter_column: str | None = "reporter",
    sgRNA_column: str | None = "sgRNA",
    bbox_column: str = "bbox",
    segmentation_id_column: str = "segmentation_id",
    min_bbox_size: int = 5,
    perturbation_map: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Build a cell index of an optical pooled screen from per-well label tables.

    For each well (``wells``, or every well of the plate in plate order) the table
    ``{labels_path}/{row}{col}_linked_pheno_iss.parquet`` (or ``.csv``) lists its cells; a
    well without one is skipped with a warning. A row becomes a cell of the well's first
    FOV: ``cell_id`` ``{experiment}_{well}/{fov}_{segmentation_id}``; ``y``, ``x`` the
    centre of the bounding box (rows whose box is narrower than ``min_bbox_size`` on a side,
    or without segmentation id, are dropped); ``channel_name`` and ``marker`` the channel
    column (``""`` without it); ``gene_name`` with nulls as ``"NTC"``; ``perturbation``
    from ``perturbation_map`` (the first entry listing the well, else ``"unknown"``); pixel
    sizes from the plate's first FOV; ``z`` 0; no time-lapse columns.

    Parameters
    ----------
    store_path : str | Path
        The OPS plate (OME-Zarr HCS); written as given into ``store_path``.
    labels_path : str | Path
        Folder of the per-well label tables.
    experiment_name : str
        The ``experiment`` of every row.
    output_path : str | Path
        The cell index to write (atomically).
    wells : list[str] | None
        Wells (``"A/1"``) to index, in this order; every plate well if None.
    channel_column, gene_column, reporter_column, sgRNA_column : str | None
        Label columns of the channel, the targeted gene, the reporter and the guide
        (``None``, or a column the table lacks, leaves the field null).
    bbox_column : str
        Column of ``"(ymin, xmin, ymax, xmax)"`` boxes; without it ``y``, ``x`` are null.
    segmentation_id_column : str
        Column of the cells' segmentation ids (required).
    min_bbox_size : int
        Smallest box height and width kept, in pixels.
    perturbation_map : dict[str, list[str]] | None
        ``{perturbation: [well, ...]}``.

    Returns
    -------
    pd.DataFrame
        The index, with the label tables' own columns and the schema's.

    Raises
    ------
    FileNotFoundError
        If the plate does not exist.
    KeyError
        If a label table lacks the segmentation id column.
    ValueError
        If a requested well is not in the plate, a box does not parse, or
        ``(cell_id, channel_name)`` repeats.
    """
    import numpy as np
    import pandas as pd
    from iohub.ngff import open_ome_zarr

    store_path_str = str(store_path)
    labels_root = Path(labels_path)
    if not Path(store_path).exists():
        raise FileNotFoundError(f"OPS plate not found: {store_path}")
    well_perturbation: dict[str, str] = {}
    for perturbation, listed in (perturbation_map or {}).items():
        for well in listed:
            well_perturbation.setdefault(str(well), str(perturbation))
    frames = []
    with open_ome_zarr(store_path, layout="hcs", mode="r") as plate:
        plate_wells = {name: well for name, well in plate.wells()}
        first = next(iter(plate.positions()), None)
        xy_um, z_um = _pixel_sizes(first[1]) if first is not None else (None, None)
        requested = list(plate_wells) if wells is None else [str(w) for w in wells]
        absent = [w for w in requested if w not in plate_wells]
        if absent:
            raise ValueError(
                f"wells {absent} are not in plate {store_path} (wells: {sorted(plate_wells)})"
            )
        for well in requested:
            label_file = _label_file(labels_root, well)
            if label_file is None:
                _logger.warning("No label file for well %s, skipping", well)
                continue
            fov = next(iter(plate_wells[well].positions()))[0]
            if label_file.suffix == ".parquet":
                labels = pd.read_parquet(label_file)
            else:
                labels = pd.read_csv(label_file)
            labels = labels.reset_index(drop=True)
            _require_columns(labels, [segmentation_id_column], str(label_file))
            labels = labels[labels[segmentation_id_column].notna()].reset_index(drop=True)
            if bbox_column in labels.columns:
                boxes = _parse_bboxes(labels[bbox_column].tolist(), bbox_column, str(label_file))
                size = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
                keep = size >= min_bbox_size
                labels, boxes = labels[keep].reset_index(drop=True), boxes[keep]
                y, x = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
            else:
                y = x = np.full(len(labels), None, dtype=object)
            n = len(labels)
            seg = labels[segmentation_id_column].astype(np.int64).to_numpy()

            def column(name: str | None, n=n, labels=labels):
                if name is not None and name in labels.columns:
                    values = labels[name].astype(object)
                    return values.where(values.notna(), None).to_numpy()
                return np.full(n, None, dtype=object)

            channel = (
                column(channel_column)
                if channel_column in labels.columns
                else np.full(n, "", dtype=object)
            )
            genes = column(gene_column)
            if gene_column in labels.columns:
                genes = np.array(["NTC" if g is None else str(g) for g in genes], dtype=object)
            built = {
                "y": y,
                "x": x,
                "cell_id": [f"{experiment_name}_{well}/{fov}_{s}" for s in seg],
                "experiment": experiment_name,
                "store_path": store_path_str,
                "tracks_path": "",
                "fov": fov,
                "well": well,
                "z": np.zeros(n, dtype=np.int64),
                "channel_name": channel,
                "marker": channel,
                "pixel_size_xy_um": xy_um,
                "pixel_size_z_um": z_um,
                "perturbation": well_perturbation.get(well, "unknown"),
                "gene_name": genes,
                "reporter": column(reporter_column),
                "sgRNA": column(sgRNA_column),
            }
            own = labels.drop(columns=[c for c in built if c in labels.columns])
            frames.append(pd.concat([own, pd.DataFrame(built, index=own.index)], axis=1))
    return _write_frames(frames, output_path, keep_empty=True)


def _lineage_ids(tracks: pd.DataFrame, prefix: str) -> list[str]:
    """``{prefix}_{root}`` per row, ``root`` the track's first ancestor (through
    ``parent_track_id``; -1 or null: none)."""
    import pandas as pd

    if "parent_track_id" not in tracks.columns:
        return [f"{prefix}_{t}" for t in tracks["track_id"]]
    parents: dict[int, int] = {}
    for track, parent in zip(tracks["track_id"], tracks["parent_track_id"], strict=True):
        if not pd.isna(parent) and int(parent) >= 0 and int(parent) != int(track):
            parents.setdefault(int(track), int(parent))

    def root(track: int) -> int:
        seen = {track}
        while track in parents and parents[track] not in seen:
            track = parents[track]
            seen.add(track)
        return track

    roots = {t: root(t) for t in set(int(t) for t in tracks["track_id"])}
    return [f"{prefix}_{roots[int(t)]}" for t in tracks["track_id"]]


def _timelapse_fov(exp, position_name: str, position, well: str, fov: str) -> pd.DataFrame:
    import pandas as pd

    from viscy_data._tracks import find_tracks_csv

    tracks = pd.read_csv(find_tracks_csv(exp.tracks_path, position_name))
    image = position["0"]
    shape = dict(
        zip(("T_shape", "C_shape", "Z_shape", "Y_shape", "X_shape"), image.shape, strict=True)
    )
    channels = [ch for ch in exp.channels if not ch.wells or well in ch.wells]
    plate_channels = list(position.channel_names)
    unknown = [ch.name for ch in channels if ch.name not in plate_channels]
    if unknown:
        raise ValueError(
            f"experiment {exp.name!r}: channels {unknown} are not in {exp.data_path} "
            f"(channels: {plate_channels})"
        )
    prefix = f"{exp.name}_{position_name}"
    common = {
        "cell_id": [
            f"{prefix}_{tr}_{t}" for tr, t in zip(tracks["track_id"], tracks["t"], strict=True)
        ],
        "experiment": exp.name,
        "store_path": exp.data_path,
        "tracks_path": exp.tracks_path,
        "fov": fov,
        "well": well,
        "perturbation": exp.perturbation_of(well),
        "global_track_id": [f"{prefix}_{tr}" for tr in tracks["track_id"]],
        "hours_post_perturbation": exp.start_hpi + tracks["t"] * exp.interval_minutes / 60.0,
        "interval_minutes": exp.interval_minutes,
        "microscope": exp.microscope,
        "organelle": exp.organelle,
        "pixel_size_xy_um": exp.pixel_size_xy_um,
        "pixel_size_z_um": exp.pixel_size_z_um,
        **shape,
    }
    lineage = _lineage_ids(tracks, prefix)
    own = tracks.drop(columns=[c for c in common if c in tracks.columns])
    frames = []
    for ch in channels:
        built = pd.DataFrame(
            {**common, "channel_name": ch.name, "marker": ch.marker, "lineage_id": lineage},
            index=own.index,
        )
        frames.append(pd.concat([own, built], axis=1))
    return pd.concat(frames, ignore_index=True) if frames else own.iloc[:0]


def build_timelapse_cell_index(
    collection_path: str | Path,
    output_path: str | Path,
    include_wells: list[str] | None = None,
    exclude_fovs: list[str] | None = None,
    num_workers: int = -1,
) -> pd.DataFrame:
    """Build a cell index of time-lapse experiments from a collection YAML.

    For every experiment of the collection (layout: ``viscy_data._collection``), every FOV
    of its plate whose well is in ``perturbation_wells`` (the first perturbation listing
    it), and every channel valid in that well (a channel's ``wells``, all if empty), each row
    of the FOV's tracks CSV (``<tracks_path>/<row>/<col>/<fov>/*.csv``, exactly one) becomes
    a row, in plate, channel and file order. The CSV's columns are kept; ``cell_id`` is
    ``{experiment}_{well}/{fov}_{track_id}_{t}``, ``global_track_id``
    ``{experiment}_{well}/{fov}_{track_id}``, ``lineage_id`` the ``global_track_id`` of the
    track's first ancestor (through ``parent_track_id``); ``hours_post_perturbation`` is
    ``start_hpi + t * interval_minutes / 60``; the shapes are the FOV's image shape.

    Parameters
    ----------
    collection_path : str | Path
        The collection YAML (0.1.0's layout).
    output_path : str | Path
        The cell index to write (atomically).
    include_wells : list[str] | None
        Only these wells (``"A/1"``).
    exclude_fovs : list[str] | None
        Skip these FOVs (``"A/1/0"``), besides each experiment's own ``exclude_fovs``.
    num_workers : int
        Threads reading FOVs (``-1``: one per CPU, ``1``: sequential); the result does not
        depend on it.

    Returns
    -------
    pd.DataFrame
        The index, with the tracks' own columns and the schema's.

    Raises
    ------
    ValueError
        For an invalid collection (missing key, empty ``perturbation_wells``, repeated
        experiment name), a channel the plate lacks, or more than one tracks CSV in a FOV.
    FileNotFoundError
        If a plate or a FOV's tracks CSV is missing.
    """
    from concurrent.futures import ThreadPoolExecutor

    from iohub.ngff import open_ome_zarr
    from tqdm.auto import tqdm

    from viscy_data._collection import load_collection

    _, experiments = load_collection(collection_path)
    workers = (os.cpu_count() or 1) if num_workers is None or num_workers < 1 else num_workers
    excluded = set(exclude_fovs or [])
    frames = []
    for exp in tqdm(experiments, desc="Experiments", unit="exp", leave=False):
        if not Path(exp.data_path).exists():
            raise FileNotFoundError(f"experiment {exp.name!r}: plate {exp.data_path} not found")
        with open_ome_zarr(exp.data_path, layout="hcs", mode="r") as plate:
            jobs = []
            for name, position in plate.positions():
                well, fov = name.rsplit("/", 1)
                if exp.perturbation_of(well) is None:
                    continue
                if include_wells is not None and well not in include_wells:
                    continue
                if name in excluded or name in exp.exclude_fovs:
                    continue
                jobs.append((name, position, well, fov))
            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1))) as pool:
                results = pool.map(lambda job, exp=exp: _timelapse_fov(exp, *job), jobs)
                frames += list(
                    tqdm(results, total=len(jobs), desc=exp.name, unit="fov", leave=False)
                )
    return _write_frames(frames, output_path)


_NORM_COLUMNS = {
    "norm_mean": "mean",
    "norm_std": "std",
    "norm_median": "median",
    "norm_iqr": "iqr",
    "norm_max": "max",
    "norm_min": "min",
}


def preprocess_cell_index(
    parquet_path: str | Path,
    output_path: str | Path | None = None,
    focus_channel: str | None = None,
) -> None:
    """Add each row's normalization statistics and its FOV's focus plane; drop empty rows.

    From the metadata each FOV's attributes hold (written by ``viscy preprocess``):
    ``norm_mean, norm_std, norm_median, norm_iqr, norm_max, norm_min`` are the row's
    channel and timepoint statistics (``normalization[channel].timepoint_statistics[t]``),
    and ``z_focus_mean`` is ``focus_slice[focus channel].fov_statistics.z_focus_mean``
    (null where absent). Rows without timepoint statistics, or whose ``norm_max`` is 0
    (empty frames), are dropped. The result is written; nothing is returned
    (:func:`read_cell_index` reads it).

    Parameters
    ----------
    parquet_path : str | Path
        The cell index.
    output_path : str | Path | None
        Where to write; ``parquet_path`` itself (replaced atomically) if None.
    focus_channel : str | None
        Channel whose focus plane is used; the first ``channel_name`` of each FOV's rows if
        None.

    Raises
    ------
    ValueError
        If a FOV has no normalization metadata (run ``viscy preprocess`` first).
    """
    import numpy as np
    from iohub.ngff import open_ome_zarr

    df = read_cell_index(parquet_path)
    values = {column: np.full(len(df), np.nan) for column in _NORM_COLUMNS}
    focus = np.full(len(df), np.nan)
    keep = np.zeros(len(df), dtype=bool)
    groups = df.groupby(["store_path", "well", "fov"], observed=True, sort=False).indices
    by_store: dict[str, list] = {}
    for (store, well, fov), rows in groups.items():
        by_store.setdefault(str(store), []).append((f"{well}/{fov}", rows))
    for store, fovs in by_store.items():
        with open_ome_zarr(store, layout="hcs", mode="r") as plate:
            for name, rows in fovs:
                attrs = dict(plate[name].zattrs)
                norm = attrs.get("normalization")
                if not norm:
                    raise ValueError(
                        f"FOV {name} of {store} has no normalization metadata; "
                        "run `viscy preprocess` first"
                    )
                channels = df["channel_name"].to_numpy()[rows]
                times = df["t"].to_numpy()[rows]
                for i, channel, t in zip(rows, channels, times, strict=True):
                    stats = (norm.get(str(channel)) or {}).get("timepoint_statistics") or {}
                    point = None if t is None or np.isnan(t) else stats.get(str(int(t)))
                    if not point:
                        continue
                    for column, key in _NORM_COLUMNS.items():
                        value = point.get(key)
                        values[column][i] = np.nan if value is None else float(value)
                    keep[i] = values["norm_max"][i] != 0.0
                channel = focus_channel if focus_channel is not None else str(channels[0])
                plane = (
                    ((attrs.get("focus_slice") or {}).get(channel) or {}).get("fov_statistics")
                    or {}
                ).get("z_focus_mean")
                if plane is not None:
                    focus[rows] = float(plane)
    out = df.assign(z_focus_mean=focus, **values)[keep].reset_index(drop=True)
    write_cell_index(out, parquet_path if output_path is None else output_path)
