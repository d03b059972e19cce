"""Benchmark of multi-experiment indexing and batch sampling; prints one JSON object.

* ``index_build``: :class:`dynaclr.index.MultiExperimentIndex` over 1,000,000 cell-timepoints
  (two experiments, 100 FOVs, dividing tracks), tracks read from CSV files on disk.
  Target: under 10 s.
* ``sampler``: :class:`viscy_data.sampler.FlexibleBatchSampler` with every axis on
  (experiment-aware, condition-balanced, temporal enrichment, leaky, 2 ranks) over
  10,000,000 anchors, batches of 256. Target: 1,000 batches per second.

Usage: ``uv run python -m benchmarks.sampler [--cells 1000000] [--anchors 10000000]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import machine


def _fov_tracks(rng: np.random.Generator, parents: int, frames: int) -> pd.DataFrame:
    """Tracks of one FOV: each parent lives half the movie, then divides into two."""
    half = frames // 2
    pid = np.repeat(np.arange(parents), half)
    pt = np.tile(np.arange(half), parents)
    did = np.repeat(np.arange(parents, 3 * parents), frames - half)
    dt = np.tile(np.arange(half, frames), 2 * parents)
    dparent = (did - parents) // 2
    track = np.r_[pid, did]
    n = len(track)
    return pd.DataFrame(
        {
            "track_id": track,
            "t": np.r_[pt, dt],
            "id": np.arange(n),
            "parent_track_id": np.r_[np.full(len(pid), -1), dparent],
            "parent_id": -1,
            "z": 0,
            "y": rng.uniform(0, 511, n).round(1),
            "x": rng.uniform(0, 511, n).round(1),
        }
    )


def bench_index(n_cells: int, workdir: Path) -> dict:
    from dynaclr.experiment import ExperimentConfig, ExperimentRegistry
    from dynaclr.index import MultiExperimentIndex
    from viscy_data import find_tracks_csv

    rng = np.random.default_rng(0)
    frames, fovs_per_exp = 100, 50
    parents = max(1, round(n_cells / (2 * fovs_per_exp * 1.5 * frames)))
    exps, shapes, fov_names = [], {}, []
    for e, interval in (("exp_a", 30.0), ("exp_b", 15.0)):
        root = workdir / f"{e}_tracks"
        names = []
        for i in range(fovs_per_exp):
            fov = f"{'AB'[i % 2]}/1/{i // 2}"
            (root / fov).mkdir(parents=True)
            _fov_tracks(rng, parents, frames).to_csv(root / fov / "tracks.csv", index=False)
            shapes[(e, fov)] = (frames, 2, 1, 512, 512)
            names.append(fov)
        fov_names.append(names)
        exps.append(
            ExperimentConfig(
                name=e,
                data_path=str(workdir),
                tracks_path=str(root),
                channel_names=["Phase3D", "GFP"],
                condition_wells={"uninfected": ["A/1"], "infected": ["B/1"]},
                interval_minutes=interval,
            )
        )
    registry = ExperimentRegistry(exps)
    start = time.perf_counter()
    tables = []
    for exp, names in zip(exps, fov_names, strict=True):
        for fov in names:
            df = pd.read_csv(find_tracks_csv(exp.tracks_path, fov))
            df["experiment"] = exp.name
            df["fov_name"] = fov
            tables.append(df)
    tracks = pd.concat(tables, ignore_index=True)
    read_s = time.perf_counter() - start
    index = MultiExperimentIndex.from_tables(
        registry, tracks, shapes, yx_patch_size=(160, 160), tau_range_hours=(0.5, 2.0)
    )
    total_s = time.perf_counter() - start
    return {
        "cell_timepoints": len(index.tracks),
        "valid_anchors": len(index.valid_anchors),
        "read_csv_s": round(read_s, 3),
        "build_s": round(total_s - read_s, 3),
        "total_s": round(total_s, 3),
        "target_s": 10.0,
        "ratio_to_target": round(total_s / 10.0, 3),
    }


def bench_sampler(n_anchors: int, n_batches: int) -> dict:
    from viscy_data.sampler import FlexibleBatchSampler

    rng = np.random.default_rng(1)
    anchors = pd.DataFrame(
        {
            "experiment": pd.Categorical.from_codes(
                rng.integers(0, 8, n_anchors), categories=[f"exp_{i}" for i in range(8)]
            ),
            "condition": pd.Categorical.from_codes(
                (rng.random(n_anchors) < 0.3).astype(np.int8), categories=["mock", "infected"]
            ),
            "hours_post_infection": rng.uniform(0, 48, n_anchors),
        }
    )
    start = time.perf_counter()
    sampler = FlexibleBatchSampler(
        anchors,
        batch_size=256,
        experiment_aware=True,
        condition_balanced=True,
        temporal_enrichment=True,
        temporal_window_hours=2.0,
        temporal_global_fraction=0.3,
        leaky=0.1,
        num_replicas=2,
        rank=0,
        seed=0,
    )
    init_s = time.perf_counter() - start
    start = time.perf_counter()
    iterator = iter(sampler)
    next(iterator)
    epoch_s = time.perf_counter() - start
    start = time.perf_counter()
    for i, _ in enumerate(iterator, start=1):
        if i == n_batches:
            break
    elapsed = time.perf_counter() - start
    rate = n_batches / elapsed
    # reference measured in the same run: plain uniform random batches (the machine's pace
    # for the minimum work a batch sampler does: draw 256 indices and hand over a list)
    ref_rng = np.random.default_rng(2)
    start = time.perf_counter()
    for _ in range(n_batches):
        ref_rng.integers(0, n_anchors, size=256).tolist()
    ref_rate = n_batches / (time.perf_counter() - start)
    return {
        "anchors": n_anchors,
        "batch_size": 256,
        "batches_per_epoch_per_rank": len(sampler),
        "init_s": round(init_s, 3),
        "epoch_setup_s": round(epoch_s, 3),
        "batches_timed": n_batches,
        "batches_per_s": round(rate, 1),
        "target_batches_per_s": 1000.0,
        "ratio_to_target": round(rate / 1000.0, 3),
        "uniform_reference_batches_per_s": round(ref_rate, 1),
        "ratio_to_uniform_reference": round(rate / ref_rate, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--anchors", type=int, default=10_000_000)
    parser.add_argument("--batches", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = bench_index(args.cells, Path(tmp))
    result = {
        "benchmark": "sampler",
        "machine": machine(),
        "index_build": index,
        "sampler": bench_sampler(args.anchors, args.batches),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
