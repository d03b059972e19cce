"""Cell-index builders probed alike in both environments (``sections/utils.py`` cases).

Every input is written here, from fixed values: small HCS plates written with iohub (zeros,
chosen scales, normalization and focus attributes), tracks CSVs, OPS label tables and
merged Parquets, collection YAMLs. A probe returns the builder's result as plain values:
the returned table (column set, values per column) and the written file read back with
``read_cell_index`` (columns, dtypes, values), or the error type.
"""

from __future__ import annotations

import json
from pathlib import Path

KINDS = ("ops_convert", "ops_build", "timelapse", "preprocess")


def _value(v):
    """A cell as a comparable string: nulls None, numbers by value (1 == 1.0)."""
    import pandas as pd

    if v is None or (not isinstance(v, (list, tuple, dict)) and bool(pd.isna(v))):
        return None
    try:
        return repr(round(float(v), 5))
    except (TypeError, ValueError):
        return str(v)


def _kind(dtype) -> str:
    name = str(dtype)
    return "string" if name in ("object", "str", "string") else name


def _table(df, dtypes: bool) -> dict:
    out = {
        "columns": list(df.columns) if dtypes else sorted(df.columns),
        "values": {c: [_value(v) for v in df[c].tolist()] for c in sorted(df.columns)},
        "n_rows": len(df),
    }
    if dtypes:
        out["dtypes"] = {c: _kind(df[c].dtype) for c in df.columns}
    return out


def _error(exc) -> dict:
    return {"error": type(exc).__name__, "message": str(exc)[:300]}


def _result(fn, output):
    from viscy_data.cell_index import read_cell_index

    try:
        returned = fn()
    except Exception as exc:
        return _error(exc)
    out = {"file": _table(read_cell_index(output), dtypes=True)}
    if returned is not None:
        out["returned"] = _table(returned, dtypes=False)
    return out


# ---------------------------------------------------------------- inputs


def _plate(path: Path, layout: dict, channels=("Phase3D", "GFP"), shape=(3, 2, 3, 16, 16)):
    """``layout``: ``{"A/1/0": {"scale": [...], "attrs": {...}}, ...}``."""
    import numpy as np
    from iohub.ngff import open_ome_zarr
    from iohub.ngff.models import TransformationMeta

    with open_ome_zarr(
        path, layout="hcs", mode="w-", channel_names=list(channels), version="0.4"
    ) as plate:
        for name, spec in layout.items():
            row, col, fov = name.split("/")
            pos = plate.create_position(row, col, fov)
            scale = spec.get("scale", [1.0, 1.0, 1.0, 1.0, 1.0])
            pos.create_zeros(
                "0",
                shape=tuple(spec.get("shape", shape)),
                dtype=np.uint16,
                transform=[TransformationMeta(type="scale", scale=scale)],
            )
            for key, value in spec.get("attrs", {}).items():
                pos.zattrs[key] = value


def _tracks(root: Path, fov: str, rows: list[tuple], extra: dict | None = None) -> None:
    import pandas as pd

    cols = ["track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"]
    df = pd.DataFrame(rows, columns=cols)
    for k, v in (extra or {}).items():
        df[k] = v
    folder = root / fov
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "tracks.csv", index=False)


_DIVIDING = [  # track 3 divides into 4 and 5 at t=2, 4 into 6 at t=2 (a grandchild)
    (1, 0, 1, -1, -1, 1, 5.5, 6.0),
    (3, 0, 3, -1, -1, 0, 9.0, 4.25),
    (1, 1, 4, -1, -1, 1, 5.75, 6.5),
    (3, 1, 6, -1, -1, 0, 9.5, 4.0),
    (4, 2, 9, 3, 6, 0, 10.0, 3.0),
    (5, 2, 10, 3, 6, 0, 8.0, 5.0),
    (6, 2, 11, 4, 9, 0, 7.0, 2.0),
    (1, 2, 7, -1, -1, 1, 6.0, 7.0),
]
_PLAIN = [(2, t, 20 + t, -1, -1, 2, 3.0 + t, 12.0) for t in range(3)]


def _timelapse_inputs(tmp: Path) -> dict:
    _plate(tmp / "tl.zarr", {"A/1/0": {}, "A/1/1": {}, "B/2/0": {}, "C/3/0": {}})
    tracks = tmp / "tracks"
    _tracks(tracks, "A/1/0", _DIVIDING[::-1], extra={"area": 12.5})  # file order is kept
    _tracks(tracks, "A/1/1", _PLAIN)
    _tracks(tracks, "B/2/0", _PLAIN + _DIVIDING[:2])
    _tracks(tracks, "C/3/0", _PLAIN)
    return {"data_path": str(tmp / "tl.zarr"), "tracks_path": str(tracks)}


def _experiment(paths: dict, **overrides) -> dict:
    exp = {
        "name": "exp1",
        **paths,
        "channels": [
            {"name": "Phase3D", "marker": "Phase3D"},
            {"name": "GFP", "marker": "SEC61B", "wells": ["B/2"]},
        ],
        "perturbation_wells": {"uninfected": ["A/1"], "infected": ["B/2"]},
        "interval_minutes": 15.0,
        "start_hpi": 2.0,
        "organelle": "ER",
        "microscope": "mantis",
        "pixel_size_xy_um": 0.2,
        "pixel_size_z_um": 1.5,
    }
    exp.update(overrides)
    return exp


def _stats(base: float, times=(0, 1, 2)) -> dict:
    point = {
        "mean": base,
        "std": base / 4,
        "median": base - 1,
        "iqr": base / 2,
        "max": base * 3,
        "min": base / 10,
        "p5": 0.0,
    }
    return {
        "fov_statistics": point,
        "timepoint_statistics": {str(t): {k: v + t for k, v in point.items()} for t in times},
    }


# ---------------------------------------------------------------- probes


def _ops_convert(case: dict, tmp: Path):
    import numpy as np
    import pandas as pd

    from viscy_data.cell_index import convert_ops_parquet

    variant = case["variant"]
    df = pd.DataFrame(
        {
            "store_key": ["k2", "k1", "k2", "k1"],
            "well": ["A/1/0", "A/1/2/3", "B/3", "C"],
            "bbox": ["(0, 0, 10, 20)", "(5,6,15,9)", "1,2,3,4", "(-1, -2, 3, 4, 9)"],
            "gene_name": ["g", None, np.nan, ""],
            "reporter": [None, "r", "r", ""],
            "sgRNA": ["s1", "s2", None, "s4"],
            "channel": [None, "c", "c", "c"],
            "tile": [1, 2, 3, 4],
            "fov": ["f"] * 4,
            "t": [5] * 4,
        }
    )
    kw = {}
    if variant == "minimal":
        df = df[["store_key", "well", "bbox"]]
        kw = {"store_root": "/root", "store_suffix": "s.zarr"}
    elif variant == "index":
        df.index = [10, 11, 12, 13]
    elif variant == "no bbox":
        df = df.drop(columns=["bbox"])
    elif variant == "bad bbox":
        df.loc[2, "bbox"] = "(a, b, c, d)"
    elif variant == "empty":
        df = df.iloc[:0]
    src = tmp / "ops.parquet"
    df.to_parquet(src)
    out = tmp / "out.parquet"
    return _result(lambda: convert_ops_parquet(src, out, **kw), out)


def _ops_build(case: dict, tmp: Path):
    import pandas as pd

    from viscy_data.cell_index import build_ops_cell_index

    variant = case["variant"]
    _plate(
        tmp / "ops.zarr",
        {
            "A/1/p7": {"scale": [1, 1, 2.5, 0.5, 0.25]},
            "A/1/p3": {"scale": [1, 1, 2.5, 0.5, 0.25]},
            "C/10/0": {"scale": [1, 1, 3.0, 0.7, 0.7]},
        },
    )
    labels = pd.DataFrame(
        {
            "channel": ["GFP", "Phase3D", "GFP", "GFP"],
            "gene_name": ["g1", "NTC", None, "g4"],
            "reporter": ["r", "r2", None, "r"],
            "sgRNA": ["s1", "s2", None, "s4"],
            "bbox": ["(0, 0, 10, 20)", "(2, 3, 12, 9)", "(0,0,5,5)", "(0, 0, 4, 10)"],
            "segmentation_id": [1, 2, None, 4],
            "tile": [7, 8, 9, 10],
            "fov": ["zz"] * 4,
        }
    )
    root = tmp / "labels"
    root.mkdir()
    kw = dict(case.get("kw", {}))
    if variant == "no channel":
        labels = labels.drop(columns=["channel"])
    elif variant == "no bbox":
        labels = labels.drop(columns=["bbox"])
    elif variant == "no segmentation id":
        labels = labels.drop(columns=["segmentation_id"])
    elif variant == "duplicate":
        labels = labels.assign(segmentation_id=1, channel="c")
    labels.to_csv(root / "A1_linked_pheno_iss.csv", index=False)
    labels.assign(gene_name="PQ").to_parquet(root / "C10_linked_pheno_iss.parquet")
    labels.to_csv(root / "C10_linked_pheno_iss.csv", index=False)  # the Parquet wins
    store = tmp / ("missing.zarr" if variant == "missing store" else "ops.zarr")
    out = tmp / "out.parquet"
    return _result(lambda: build_ops_cell_index(store, root, "opsexp", out, **kw), out)


def _timelapse(case: dict, tmp: Path):
    import yaml

    from viscy_data.cell_index import build_timelapse_cell_index

    variant = case["variant"]
    paths = _timelapse_inputs(tmp)
    exps = [_experiment(paths)]
    kw = dict(case.get("kw", {}))
    collection = {"name": "coll", "description": "d"}
    if variant == "channel_names only":
        exps = [
            {
                "name": "m",
                **paths,
                "channel_names": ["GFP", "Phase3D"],
                "perturbation_wells": {"x": ["A/1", "C/3"], "y": ["A/1"]},
            }
        ]
    elif variant == "two experiments":
        exps = [
            _experiment(paths, perturbation_wells={"u": ["A/1"]}, exclude_fovs=["A/1/1"]),
            _experiment(paths, name="exp2", perturbation_wells={"i": ["B/2", "C/3"]}),
        ]
    elif variant == "datasets_root":
        collection["datasets_root"] = str(tmp)
        exps = [
            _experiment(
                {"data_path": "${datasets_root}/tl.zarr", "tracks_path": "${datasets_root}/tracks"}
            )
        ]
    elif variant == "duplicate names":
        exps = exps * 2
    elif variant == "empty perturbation_wells":
        exps = [_experiment(paths, perturbation_wells={})]
    elif variant == "no name":
        collection.pop("name")
    elif variant == "missing tracks":
        (Path(paths["tracks_path"]) / "B/2/0/tracks.csv").unlink()
    elif variant == "two tracks files":
        folder = Path(paths["tracks_path"]) / "A/1/1"
        (folder / "more.csv").write_text((folder / "tracks.csv").read_text())
    elif variant == "channel not in plate":
        exps = [_experiment(paths, channels=[{"name": "RFP", "marker": "R"}])]
    elif variant == "no experiments":
        exps = []
    collection["experiments"] = exps
    path = tmp / "collection.yml"
    path.write_text(yaml.safe_dump(collection))
    out = tmp / "out.parquet"
    kw.setdefault("num_workers", 1)
    return _result(lambda: build_timelapse_cell_index(path, out, **kw), out)


def _preprocess(case: dict, tmp: Path):
    import shutil

    import yaml

    from viscy_data.cell_index import build_timelapse_cell_index, preprocess_cell_index

    variant = case["variant"]
    norm_a0 = {"Phase3D": _stats(100.0), "GFP": _stats(10.0, times=(0, 1))}
    norm_a1 = {"Phase3D": _stats(200.0), "GFP": _stats(20.0)}
    norm_a1["Phase3D"]["timepoint_statistics"]["1"]["max"] = 0.0  # an empty frame
    focus = {"Phase3D": {"fov_statistics": {"z_focus_mean": 1.25}}}
    layout = {
        "A/1/0": {"attrs": {"normalization": norm_a0, "focus_slice": focus}},
        "A/1/1": {"attrs": {"normalization": norm_a1}},
    }
    if variant == "two wells":  # FOV "0" in two wells with their own statistics
        layout["B/2/0"] = {"attrs": {"normalization": {"Phase3D": _stats(300.0)}}}
    if variant == "no normalization":
        layout["A/1/1"] = {}
    _plate(tmp / "pp.zarr", layout)
    tracks = tmp / "tracks"
    _tracks(tracks, "A/1/0", _DIVIDING)
    _tracks(tracks, "A/1/1", _PLAIN)
    if "B/2/0" in layout:
        _tracks(tracks, "B/2/0", _PLAIN)
    exp = _experiment(
        {"data_path": str(tmp / "pp.zarr"), "tracks_path": str(tracks)},
        channels=[{"name": "Phase3D", "marker": "P"}, {"name": "GFP", "marker": "G"}],
        perturbation_wells={"u": ["A/1", "B/2"]},
    )
    (tmp / "c.yml").write_text(yaml.safe_dump({"name": "c", "experiments": [exp]}))
    index = tmp / "index.parquet"
    build_timelapse_cell_index(tmp / "c.yml", index, num_workers=1)
    out = tmp / "out.parquet"
    kw = dict(case.get("kw", {}))
    if variant == "in place":
        shutil.copy(index, out)
        return _result(lambda: preprocess_cell_index(out, **kw), out)
    return _result(lambda: preprocess_cell_index(index, out, **kw), out)


def probe(case: dict, tmp: Path):
    import warnings

    warnings.simplefilter("ignore")
    fn = {
        "ops_convert": _ops_convert,
        "ops_build": _ops_build,
        "timelapse": _timelapse,
        "preprocess": _preprocess,
    }[case["kind"]]
    result = fn(case, tmp)
    # paths inside the (per-side) temporary folder compare by their relative part
    return {"value": json.loads(json.dumps(result).replace(str(tmp), "<tmp>"))}
