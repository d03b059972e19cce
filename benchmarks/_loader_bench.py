"""Shared helpers of the loader benchmarks (``benchmarks/loaders.py``).

Every loader benchmark compares a training DataLoader against the limit of the same
storage: one raw tensorstore read of exactly the boxes the loader read, in the same run,
with a cold decoded-chunk cache (fresh context) and a warm one (same boxes read again).
The result is a ratio ``loader / raw`` of throughputs (samples per second).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from viscy_data._reader import PatchBox


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return (seconds, result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _ts_array(path: Path, context: Any) -> Any:
    import tensorstore as ts

    driver = "zarr3" if (path / "zarr.json").exists() else "zarr"
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}
    return ts.open(spec, read=True, context=context).result()


def raw_tensorstore_read(
    store_path: str | Path,
    boxes: Sequence[PatchBox],
    cache_bytes: int,
    array_key: str = "0",
) -> dict[str, float]:
    """Time one batched tensorstore read of ``boxes``: cold (new context), then warm (again).

    All reads are issued asynchronously, then awaited; results are copied into one
    preallocated array (what a loader must do at least).

    Returns
    -------
    dict
        ``cold_s`` and ``warm_s`` (seconds), ``boxes`` and ``bytes`` (of one pass).
    """
    import tensorstore as ts

    store_path = Path(store_path)
    context = ts.Context({"cache_pool": {"total_bytes_limit": int(cache_bytes)}})
    arrays = {
        name: _ts_array(store_path / name / array_key, context)
        for name in sorted({b.position for b in boxes})
    }
    c, z, y, x = boxes[0].size
    dtype = arrays[boxes[0].position].dtype.numpy_dtype
    out = np.empty((len(boxes), c, z, y, x), dtype=dtype)

    def read_all() -> None:
        futures = [
            arrays[b.position]
            .oindex[b.t, list(b.channels), slice(*b.z), slice(*b.y), slice(*b.x)]
            .read()
            for b in boxes
        ]
        for i, future in enumerate(futures):
            out[i] = future.result()

    cold_s, _ = timed(read_all)
    warm_s, _ = timed(read_all)
    return {"cold_s": cold_s, "warm_s": warm_s, "boxes": len(boxes), "bytes": int(out.nbytes)}


def boxes_from_records(records: Iterable[tuple]) -> list[PatchBox]:
    """PatchBoxes from ``(position, t, channels, z, y, x)`` tuples recorded by a loader."""
    return [
        PatchBox(p, int(t), tuple(c), tuple(z), tuple(y), tuple(x)) for p, t, c, z, y, x in records
    ]


def ratio_summary(loader_s: float, raw_s: float, samples: int, target: float = 0.5) -> dict:
    """Throughputs and their ratio for one cache state."""
    loader_rate = samples / loader_s
    raw_rate = samples / raw_s
    ratio = loader_rate / raw_rate
    return {
        "loader_samples_per_s": round(loader_rate, 2),
        "raw_samples_per_s": round(raw_rate, 2),
        "loader_over_raw": round(ratio, 3),
        "target": target,
        "pass": bool(ratio >= target),
    }


def machine() -> dict:
    """Where the numbers were measured."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def emit(result: dict) -> None:
    """Print the result as one JSON object."""
    print(json.dumps(result, indent=2))
