"""``dynaclr explore``: a self-contained interactive HTML page of an embedding (EX-05).

The page draws the 2-D embedding (an ``obsm`` key such as ``X_pca`` or ``X_umap``; PCA is
computed when none is there) on a canvas, coloured by a chosen ``obs`` column. Hovering a
point shows that cell's crop; clicking it shows the crops of its whole track over time and
draws the track's path through the embedding. Crops are read from the plate through
viscy-data's patch reader and embedded as PNG data URIs, so the file needs no server and
no network: open it in any browser, or pass ``--serve`` to serve it on localhost.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from dynaclr.evaluation._io import clean_fov, model_name, read_embeddings, track_keys

__all__ = ["build_explorer", "main", "serve"]

_MAX_CATEGORIES = 20


def _png_data_uri(rgb: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.image import imsave

    buffer = io.BytesIO()
    imsave(buffer, rgb, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _coords(adata, key: str | None) -> tuple[np.ndarray, str]:
    if key is None:
        key = next((k for k in ("X_umap", "X_phate", "X_pca") if k in adata.obsm), None)
    if key is None:
        from viscy_utils.evaluation import compute_pca

        coords, _ = compute_pca(np.asarray(adata.X, dtype=np.float32), n_components=2)
        return coords, "PCA (computed)"
    if key not in adata.obsm:
        raise KeyError(f"No obsm[{key!r}] (obsm keys: {list(adata.obsm.keys())})")
    coords = np.asarray(adata.obsm[key], dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError(f"obsm[{key!r}] has shape {coords.shape}; need (n, >=2)")
    return coords[:, :2], key


def _columns(obs: pd.DataFrame) -> dict[str, dict]:
    """Each obs column as categorical (codes + names) or numeric (values) for the page."""
    out = {}
    for name in obs.columns:
        values = obs[name]
        numeric = values.dtype.kind in "fiu" and values.nunique() > _MAX_CATEGORIES
        if numeric:
            v = values.astype(float).to_numpy()
            out[name] = {
                "kind": "numeric",
                "values": [None if np.isnan(a) else float(a) for a in v],
            }
        elif values.nunique() <= _MAX_CATEGORIES:
            names = sorted(values.dropna().astype(str).unique())
            lookup = {n: i for i, n in enumerate(names)}
            codes = [-1 if pd.isna(a) else lookup[str(a)] for a in values]
            out[name] = {"kind": "category", "names": names, "codes": codes}
    return out


def build_explorer(
    embeddings_path: str | Path,
    plate_path: str | Path,
    output_path: str | Path,
    key: str | None = None,
    color_by: str | None = None,
    crop_size: int = 48,
    channels: list[str] | None = None,
    max_tracks: int | None = 300,
    seed: int = 0,
) -> Path:
    """Write the explorer HTML page.

    Parameters
    ----------
    embeddings_path : path
        AnnData zarr store.
    plate_path : path
        OME-Zarr plate the cells come from (for the crops).
    output_path : path
        HTML file to write.
    key : str, optional
        ``obsm`` key of the 2-D coordinates (default: UMAP, PHATE or PCA, whichever exists).
    color_by : str, optional
        Initial colouring column (default: ``infection_state``, ``condition`` or the first
        categorical column).
    crop_size : int
        Side of the crops in pixels.
    channels : list of str, optional
        Channels composited into the thumbnails (default: all).
    max_tracks : int, optional
        Keep at most this many whole tracks (randomly chosen) to bound the page size.
    seed : int
        Seed of the track subsampling.
    """
    from dynaclr.evaluation._crops import read_cell_crops, to_rgb

    adata = read_embeddings(embeddings_path)
    coords, key_used = _coords(adata, key)
    obs = adata.obs.reset_index(drop=True)
    tracks = track_keys(obs)
    unique = np.unique(tracks)
    if max_tracks is not None and len(unique) > max_tracks:
        chosen = np.random.default_rng(seed).choice(unique, max_tracks, replace=False)
        keep = np.isin(tracks, chosen)
        obs, coords, tracks = obs[keep].reset_index(drop=True), coords[keep], tracks[keep]
    crops, names = read_cell_crops(plate_path, obs, crop_size, channels)
    thumbs = [_png_data_uri(image) for image in to_rgb(crops, names)]
    columns = _columns(obs)
    if color_by is None:
        color_by = next(
            (
                c
                for c in ("infection_state", "condition", "predicted_infection_state")
                if c in columns
            ),
            next((c for c, v in columns.items() if v["kind"] == "category"), None),
        )
    elif color_by not in columns:
        raise KeyError(f"Cannot colour by {color_by!r}: obs columns usable are {list(columns)}")
    data = {
        "title": model_name(embeddings_path),
        "key": key_used,
        "x": coords[:, 0].astype(float).round(5).tolist(),
        "y": coords[:, 1].astype(float).round(5).tolist(),
        "fov": clean_fov(obs["fov_name"]).tolist(),
        "track": tracks.tolist(),
        "t": obs["t"].astype(int).tolist(),
        "columns": columns,
        "colorBy": color_by,
        "thumbs": thumbs,
        "channels": names,
    }
    html = _TEMPLATE.replace("__DATA__", json.dumps(data).replace("</", "<\\/"))
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(f".{output_path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, output_path)
    return output_path


def serve(path: str | Path, port: int = 8000) -> None:
    """Serve the page's folder on http://127.0.0.1:port until interrupted."""
    import functools
    import http.server

    path = Path(path).resolve()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving http://127.0.0.1:{server.server_address[1]}/{path.name} (Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dynaclr explore``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr explore",
        description="Write a self-contained interactive HTML page of an embedding: hover or "
        "click a cell to see its crops over time and its track.",
    )
    parser.add_argument("embeddings", help="AnnData zarr store")
    parser.add_argument("--plate", required=True, help="OME-Zarr plate the cells come from")
    parser.add_argument("--out", help="HTML file (default: <embeddings>.html next to it)")
    parser.add_argument("--key", help="obsm key of the 2-D coordinates (default: umap/phate/pca)")
    parser.add_argument("--color-by", help="initial obs column to colour by")
    parser.add_argument("--crop-size", type=int, default=48)
    parser.add_argument("--channel", action="append", help="channel in the thumbnails (repeat)")
    parser.add_argument("--max-tracks", type=int, default=300, help="0 keeps every track")
    parser.add_argument("--serve", action="store_true", help="serve the page on localhost")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(str(args.embeddings).rstrip("/") + ".html")
    path = build_explorer(
        args.embeddings,
        args.plate,
        out,
        args.key,
        args.color_by,
        args.crop_size,
        args.channel,
        args.max_tracks or None,
    )
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); open it in a browser")
    if args.serve:
        serve(path, args.port)
    return 0


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>DynaCLR explorer</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 12px; color: #222; }
  #layout { display: flex; gap: 16px; align-items: flex-start; }
  #scatter { border: 1px solid #ccc; cursor: crosshair; }
  #side { min-width: 320px; max-width: 560px; }
  #legend span { display: inline-block; margin-right: 10px; font-size: 13px; }
  #legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px;
              border-radius: 5px; }
  #hover { min-height: 120px; }
  .thumb { width: 64px; height: 64px; image-rendering: pixelated; border: 1px solid #999; }
  figure { display: inline-block; margin: 2px; text-align: center; font-size: 11px; }
  figure.current img { border: 2px solid #d00; }
  figcaption { margin: 0; }
</style>
</head>
<body>
<h3 id="title"></h3>
<div id="controls">colour by <select id="color-by"></select>
  <span id="count"></span></div>
<div id="legend"></div>
<div id="layout">
  <canvas id="scatter" width="640" height="640"></canvas>
  <div id="side">
    <div id="hover"><em>Hover a point to see the cell; click it to see its track.</em></div>
    <h4 id="track-title"></h4>
    <div id="track"></div>
  </div>
</div>
<script>
"use strict";
const DATA = __DATA__;
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const canvas = document.getElementById("scatter");
const ctx = canvas.getContext("2d");
const n = DATA.x.length;
const pad = 24;
let selectedTrack = null;
const xmin = Math.min(...DATA.x), xmax = Math.max(...DATA.x);
const ymin = Math.min(...DATA.y), ymax = Math.max(...DATA.y);
function sx(i) {
  return pad + (DATA.x[i] - xmin) / ((xmax - xmin) || 1) * (canvas.width - 2 * pad);
}
function sy(i) {
  const h = canvas.height - 2 * pad;
  return canvas.height - pad - (DATA.y[i] - ymin) / ((ymax - ymin) || 1) * h;
}
function colour(i) {
  const col = DATA.columns[DATA.colorBy];
  if (!col) return PALETTE[0];
  if (col.kind === "category") {
    const c = col.codes[i];
    return c < 0 ? "#cccccc" : PALETTE[c % PALETTE.length];
  }
  const v = col.values[i];
  if (v === null) return "#cccccc";
  const vals = col.values.filter(a => a !== null);
  const lo = Math.min(...vals), hi = Math.max(...vals);
  const f = (v - lo) / ((hi - lo) || 1);
  return `hsl(${Math.round(260 - 200 * f)}, 70%, 45%)`;
}
function drawLegend() {
  const col = DATA.columns[DATA.colorBy];
  const legend = document.getElementById("legend");
  legend.innerHTML = "";
  if (!col) return;
  if (col.kind === "category") {
    col.names.forEach((name, k) => {
      const s = document.createElement("span");
      s.innerHTML = `<i style="background:${PALETTE[k % PALETTE.length]}"></i>`;
      s.appendChild(document.createTextNode(name));
      legend.appendChild(s);
    });
  } else {
    legend.textContent = DATA.colorBy + ": low (purple) to high (yellow-green)";
  }
}
function draw() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  let drawn = 0;
  for (let i = 0; i < n; i++) {
    ctx.fillStyle = colour(i);
    ctx.globalAlpha = selectedTrack === null || DATA.track[i] === selectedTrack ? 0.85 : 0.25;
    ctx.beginPath();
    ctx.arc(sx(i), sy(i), 3.5, 0, 2 * Math.PI);
    ctx.fill();
    drawn++;
  }
  ctx.globalAlpha = 1.0;
  if (selectedTrack !== null) {
    const idx = trackPoints(selectedTrack);
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    idx.forEach((i, k) => k === 0 ? ctx.moveTo(sx(i), sy(i)) : ctx.lineTo(sx(i), sy(i)));
    ctx.stroke();
    idx.forEach(i => { ctx.beginPath(); ctx.arc(sx(i), sy(i), 5, 0, 2 * Math.PI); ctx.stroke(); });
  }
  canvas.dataset.pointsDrawn = String(drawn);
  document.getElementById("count").textContent = `${drawn} cells`;
  drawLegend();
}
function trackPoints(track) {
  const idx = [];
  for (let i = 0; i < n; i++) if (DATA.track[i] === track) idx.push(i);
  return idx.sort((a, b) => DATA.t[a] - DATA.t[b]);
}
function nearest(ev) {
  const r = canvas.getBoundingClientRect();
  const px = (ev.clientX - r.left) * canvas.width / r.width;
  const py = (ev.clientY - r.top) * canvas.height / r.height;
  let best = -1, bestD = 64;
  for (let i = 0; i < n; i++) {
    const d = (sx(i) - px) ** 2 + (sy(i) - py) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  }
  return best;
}
function describe(i) {
  const col = DATA.columns[DATA.colorBy];
  let label = "";
  if (col) label = col.kind === "category" ? (col.codes[i] < 0 ? "?" : col.names[col.codes[i]])
                                           : String(col.values[i]);
  return `FOV ${DATA.fov[i]}, track ${DATA.track[i].split("/").pop()}, t ${DATA.t[i]}` +
         (col ? `, ${DATA.colorBy}: ${label}` : "");
}
function showHover(i) {
  const box = document.getElementById("hover");
  box.innerHTML = "";
  if (i < 0) return;
  const img = document.createElement("img");
  img.src = DATA.thumbs[i];
  img.className = "thumb";
  img.style.width = img.style.height = "112px";
  box.appendChild(img);
  const p = document.createElement("div");
  p.textContent = describe(i);
  box.appendChild(p);
}
function showTrack(i) {
  selectedTrack = DATA.track[i];
  const strip = document.getElementById("track");
  strip.innerHTML = "";
  const idx = trackPoints(selectedTrack);
  document.getElementById("track-title").textContent =
    `Track ${selectedTrack} (${idx.length} timepoints)`;
  idx.forEach(j => {
    const fig = document.createElement("figure");
    if (j === i) fig.className = "current";
    const img = document.createElement("img");
    img.src = DATA.thumbs[j];
    img.className = "thumb";
    img.title = describe(j);
    const cap = document.createElement("figcaption");
    cap.textContent = `t ${DATA.t[j]}`;
    fig.appendChild(img);
    fig.appendChild(cap);
    strip.appendChild(fig);
  });
  draw();
}
const select = document.getElementById("color-by");
Object.keys(DATA.columns).forEach(name => {
  const o = document.createElement("option");
  o.value = o.textContent = name;
  select.appendChild(o);
});
if (DATA.colorBy) select.value = DATA.colorBy;
select.addEventListener("change", () => { DATA.colorBy = select.value; draw(); });
canvas.addEventListener("mousemove", ev => showHover(nearest(ev)));
canvas.addEventListener("click", ev => { const i = nearest(ev); if (i >= 0) showTrack(i); });
document.getElementById("title").textContent =
  `${DATA.title}: ${DATA.key} (${DATA.channels.join(", ")})`;
// for scripted checks: where point i is drawn, in page coordinates
window.explorer = {
  n: n,
  pagePosition(i) {
    const r = canvas.getBoundingClientRect();
    return [r.left + sx(i) * r.width / canvas.width, r.top + sy(i) * r.height / canvas.height];
  },
  trackLength(i) { return trackPoints(DATA.track[i]).length; },
};
draw();
</script>
</body>
</html>
"""
