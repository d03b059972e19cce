"""``dynaclr info``: what an embedding zarr holds and where it came from."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dynaclr.evaluation._io import read_embeddings

__all__ = ["describe_embeddings", "main"]

_PROVENANCE_KEYS = ("checkpoint", "config", "data_path", "tracks_path", "model", "written_by")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 16 else f"array{list(value.shape)}"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def describe_embeddings(path: str | Path) -> dict:
    """Shape, obs columns (dtype, distinct values), obsm keys and provenance of a store."""
    adata = read_embeddings(path)
    obs = {}
    for column in adata.obs.columns:
        values = adata.obs[column]
        entry = {"dtype": str(values.dtype), "n_unique": int(values.nunique(dropna=True))}
        if entry["n_unique"] <= 8:
            entry["values"] = sorted(map(str, values.dropna().unique()))
        n_missing = int(values.isna().sum())
        if n_missing:
            entry["n_missing"] = n_missing
        obs[column] = entry
    provenance = dict(adata.uns.get("provenance", {}))
    return {
        "path": str(path),
        "n_cells": int(adata.n_obs),
        "n_features": int(adata.n_vars),
        "obs": obs,
        "obsm": {k: list(np.shape(v)) for k, v in adata.obsm.items()},
        "uns": sorted(adata.uns.keys()),
        "provenance": _jsonable(provenance),
    }


def _text(info: dict) -> str:
    lines = [
        f"{info['path']}: {info['n_cells']} cells x {info['n_features']} features",
        "obs:",
    ]
    for name, entry in info["obs"].items():
        extra = f" values={entry['values']}" if "values" in entry else ""
        missing = f" missing={entry['n_missing']}" if "n_missing" in entry else ""
        lines.append(
            f"  {name:<20} {entry['dtype']:<10} unique={entry['n_unique']}{extra}{missing}"
        )
    lines.append("obsm: " + (", ".join(f"{k} {v}" for k, v in info["obsm"].items()) or "-"))
    lines.append("uns: " + (", ".join(info["uns"]) or "-"))
    provenance = info["provenance"]
    lines.append("provenance:" + ("" if provenance else " - (not recorded)"))
    for key in (*_PROVENANCE_KEYS, *sorted(set(provenance) - set(_PROVENANCE_KEYS))):
        if key in provenance:
            value = provenance[key]
            if key == "config" and isinstance(value, str) and "\n" in value:
                value = f"({len(value.splitlines())} lines of YAML; --json prints it)"
            lines.append(f"  {key:<12} {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dynaclr info``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr info",
        description="Show the shape, obs columns, obsm keys and provenance (checkpoint, "
        "config, data path) of embedding zarr(s).",
    )
    parser.add_argument("embeddings", nargs="+", help="AnnData zarr store(s)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    infos = [describe_embeddings(p) for p in args.embeddings]
    if args.json:
        print(json.dumps(infos if len(infos) > 1 else infos[0], indent=2, default=str))
    else:
        print("\n\n".join(_text(i) for i in infos))
    return 0
