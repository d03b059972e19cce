"""``dynaclr plot``: PNG scatters of embedding coordinates and galleries of cell crops.

``dynaclr plot scatter`` draws any 2-D ``obsm`` key (``X_pca``, ``X_umap``, ...) coloured by
any ``obs`` column (one PNG per column). ``dynaclr plot gallery`` clusters the embeddings
(k-means, k centres) and shows, for each centre, the crops of the cells nearest to it,
read from the plate through viscy-data's patch reader.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dynaclr.evaluation._io import model_name, read_embeddings

__all__ = ["main", "plot_gallery", "plot_scatter"]


def _coords(adata, key: str, path) -> np.ndarray:
    if key == "X":
        coords = np.asarray(adata.X)
    elif key in adata.obsm:
        coords = np.asarray(adata.obsm[key])
    else:
        raise KeyError(
            f"{path} has no obsm[{key!r}] (obsm keys: {list(adata.obsm.keys())}); "
            "run `dynaclr reduce` first"
        )
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError(f"obsm[{key!r}] of {path} has shape {coords.shape}; need (n, >=2)")
    return coords


def _save(fig, path: Path) -> Path:
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", bbox_inches="tight")
    os.replace(tmp, path)
    return path


def plot_scatter(
    embeddings_path: str | Path,
    output_dir: str | Path,
    key: str = "X_pca",
    color_by: Sequence[str] = (),
    point_size: float = 6.0,
) -> list[Path]:
    """One PNG scatter of ``obsm[key]`` per ``obs`` column in ``color_by`` (or uncoloured).

    Numeric columns with many values get a colour bar; others one colour per category.
    Missing values are drawn grey.
    """
    from matplotlib.figure import Figure

    adata = read_embeddings(embeddings_path)
    xy = _coords(adata, key, embeddings_path)
    prefix = key.removeprefix("X_").upper()
    output_dir = Path(output_dir)
    written = []
    for column in list(color_by) or [None]:
        fig = Figure(figsize=(5.5, 5), dpi=100)
        ax = fig.add_subplot()
        if column is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=point_size)
        else:
            if column not in adata.obs.columns:
                raise KeyError(
                    f"obs of {embeddings_path} has no column {column!r} "
                    f"(columns: {list(adata.obs.columns)})"
                )
            values = adata.obs[column].reset_index(drop=True)
            missing = values.isna().to_numpy()
            if missing.any():
                ax.scatter(
                    xy[missing, 0], xy[missing, 1], s=point_size, c="lightgrey", label="(missing)"
                )
            numeric = values.dtype.kind in "fiu" and values.nunique() > 10
            if numeric:
                art = ax.scatter(
                    xy[~missing, 0],
                    xy[~missing, 1],
                    s=point_size,
                    c=values[~missing].to_numpy(),
                    cmap="viridis",
                )
                fig.colorbar(art, ax=ax, label=column)
            else:
                for value in sorted(values[~missing].unique(), key=str):
                    sel = (values == value).to_numpy()
                    ax.scatter(xy[sel, 0], xy[sel, 1], s=point_size, label=str(value))
            if not numeric or missing.any():
                ax.legend(markerscale=2, fontsize="small", title=column)
        ax.set_xlabel(f"{prefix}1")
        ax.set_ylabel(f"{prefix}2")
        title = model_name(embeddings_path) + (f" - {column}" if column else "")
        ax.set_title(title, fontsize="medium")
        name = f"{model_name(embeddings_path)}_{key}" + (f"_{column}" if column else "")
        written.append(_save(fig, output_dir / f"{name}.png"))
    return written


def plot_gallery(
    embeddings_path: str | Path,
    plate_path: str | Path,
    output_path: str | Path,
    k: int = 6,
    per_cluster: int = 8,
    key: str = "X",
    crop_size: int = 48,
    channels: Sequence[str] | None = None,
    seed: int = 0,
) -> Path:
    """A PNG grid: one row per k-means centre, its ``per_cluster`` nearest cells' crops."""
    from matplotlib.figure import Figure
    from sklearn.cluster import KMeans

    from dynaclr.evaluation._crops import read_cell_crops, to_rgb

    adata = read_embeddings(embeddings_path)
    x = np.asarray(adata.X if key == "X" else _coords(adata, key, embeddings_path), np.float64)
    k = min(k, len(x))
    if k < 1:
        raise ValueError(f"{embeddings_path} holds no cells")
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    obs = adata.obs.reset_index(drop=True)
    rows = []
    for c in range(k):
        distance = np.linalg.norm(x - km.cluster_centers_[c], axis=1)
        rows.append(np.argsort(distance)[:per_cluster])
    picked = np.concatenate(rows)
    crops, names = read_cell_crops(plate_path, obs.iloc[picked], crop_size, channels)
    rgb = to_rgb(crops, names)
    fig = Figure(figsize=(1.1 * per_cluster + 0.8, 1.15 * k + 0.6), dpi=100)
    axes = fig.subplots(k, per_cluster, squeeze=False)
    position = 0
    for c, members in enumerate(rows):
        for j in range(per_cluster):
            ax = axes[c, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(members):
                ax.imshow(rgb[position], interpolation="nearest")
                cell = obs.iloc[members[j]]
                ax.set_title(f"{cell['fov_name']} t{cell['t']}", fontsize=5)
                position += 1
            else:
                ax.set_axis_off()
        axes[c, 0].set_ylabel(f"cluster {c}\n(n={int((km.labels_ == c).sum())})", fontsize=7)
    fig.suptitle(
        f"{model_name(embeddings_path)}: cells nearest {k} k-means centres ({', '.join(names)})",
        fontsize=8,
    )
    return _save(fig, Path(output_path))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dynaclr plot``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr plot",
        description="PNG figures of embeddings: scatters coloured by obs columns, and galleries "
        "of cell crops nearest to k cluster centres.",
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    scatter = sub.add_parser("scatter", help="obsm coordinates coloured by obs columns")
    scatter.add_argument("embeddings", nargs="+", help="AnnData zarr store(s)")
    scatter.add_argument("--key", default="X_pca", help="obsm key (default: %(default)s)")
    scatter.add_argument("--color-by", action="append", default=[], help="obs column (repeat)")
    scatter.add_argument("--out", required=True, help="output folder")
    gallery = sub.add_parser("gallery", help="crops of cells nearest k cluster centres")
    gallery.add_argument("embeddings", help="AnnData zarr store")
    gallery.add_argument("--plate", required=True, help="the OME-Zarr plate the cells come from")
    gallery.add_argument("--out", required=True, help="PNG to write")
    gallery.add_argument("-k", type=int, default=6, help="clusters")
    gallery.add_argument("--per-cluster", type=int, default=8)
    gallery.add_argument("--key", default="X", help="X or an obsm key to cluster")
    gallery.add_argument("--crop-size", type=int, default=48)
    gallery.add_argument("--channel", action="append", help="channel to show (repeat)")
    gallery.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.kind == "scatter":
        for path in args.embeddings:
            for png in plot_scatter(path, args.out, args.key, args.color_by):
                print(f"wrote {png}")
    else:
        png = plot_gallery(
            args.embeddings,
            args.plate,
            args.out,
            args.k,
            args.per_cluster,
            args.key,
            args.crop_size,
            args.channel,
            args.seed,
        )
        print(f"wrote {png}")
    return 0
