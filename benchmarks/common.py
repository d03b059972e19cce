"""What every benchmark shares: timing, the machine, JSON output, and the raw read limit.

A loader benchmark compares a training DataLoader against the limit of the same storage:
bare tensorstore reads of exactly the boxes the loader read, in the same run, with a chunk
cache of the loader's size (:class:`RawTensorstore`). The figure is the ratio
``loader / raw`` of throughputs (:func:`ratio_summary`).
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

from viscy_data import PatchBox

#: One box of one store: ``(store_path, box)``.
StoreBox = tuple[str, PatchBox]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return (seconds, result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def emit(result: dict) -> None:
    """Print the result as one JSON object."""
    print(json.dumps(result, indent=2))


def parse_ints(text: str) -> tuple[int, ...]:
    """``"8,2,8,1024,1024"`` (or ``8x2x...``) as a tuple of ints, for shape options."""
    return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())


def preload_imports() -> None:
    """Import what every loader needs, so that the setup times measured exclude imports."""
    import iohub.ngff  # noqa: F401
    import tensorstore  # noqa: F401
    import torch  # noqa: F401
    from monai.data import ThreadDataLoader  # noqa: F401


def synthetic_plate(
    path: Path,
    shape: Sequence[int],
    channel_names: Sequence[str],
    cells_per_fov: int,
    tracks_path: Path | None = None,
    seed: int = 0,
) -> float:
    """Write a 2-well x 2-FOV synthetic plate (NGFF 0.5) unless it exists; seconds spent."""
    if path.exists():
        return 0.0
    from viscy_data.synthetic import write_synthetic_plate

    seconds, _ = timed(
        lambda: write_synthetic_plate(
            path,
            shape=tuple(shape),
            channel_names=tuple(channel_names),
            wells=(("A", "1"), ("B", "1")),
            fovs_per_well=2,
            version="0.5",
            seed=seed,
            tracks_path=tracks_path,
            cells_per_fov=cells_per_fov,
        )
    )
    return seconds


def boxes_from_records(records: Iterable[tuple]) -> list[PatchBox]:
    """PatchBoxes from ``(position, t, channels, z, y, x)`` tuples recorded by a loader."""
    return [
        PatchBox(p, int(t), tuple(c), tuple(z), tuple(y), tuple(x)) for p, t, c, z, y, x in records
    ]


def on_store(store_path: str | Path, boxes: Iterable[PatchBox]) -> list[StoreBox]:
    """The boxes of one store as a selection for :class:`RawTensorstore`."""
    return [(str(store_path), box) for box in boxes]


class RawTensorstore:
    """Bare tensorstore reads of boxes: the limit a loader is measured against.

    One tensorstore context (chunk cache of ``cache_bytes``) for every array, so a sequence
    of selections sees the same cache history as the loader that read them. Arrays are
    opened outside the timed part; every box of a selection is issued at once, then awaited
    and copied into one preallocated (already touched) array per box size: what a loader
    must do at least to hand over a batch.
    """

    def __init__(self, cache_bytes: int, array_key: str = "0") -> None:
        import tensorstore as ts

        self.context = ts.Context({"cache_pool": {"total_bytes_limit": int(cache_bytes)}})
        self.array_key = array_key
        self._arrays: dict[tuple[str, str], Any] = {}

    def _array(self, store: str, position: str) -> Any:
        key = (store, position)
        if key not in self._arrays:
            import tensorstore as ts

            path = Path(store) / position / self.array_key
            driver = "zarr3" if (path / "zarr.json").exists() else "zarr"
            spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}
            self._arrays[key] = ts.open(spec, read=True, context=self.context).result()
        return self._arrays[key]

    def seconds(self, selection: Sequence[StoreBox]) -> float:
        """Time reading every box of ``selection``."""
        if not selection:
            return 0.0
        arrays = [self._array(store, box.position) for store, box in selection]
        counts: dict[tuple, int] = {}
        slots = []  # (output, row) of each box
        for (_, box), array in zip(selection, arrays, strict=True):
            key = (box.size, array.dtype.numpy_dtype)
            slots.append((key, counts.get(key, 0)))
            counts[key] = counts.get(key, 0) + 1
        outputs = {key: np.empty((n, *key[0]), dtype=key[1]) for key, n in counts.items()}
        for out in outputs.values():
            out.fill(0)  # touch every page now: the timed part pays for reads, not page faults

        start = time.perf_counter()
        futures = [
            array.oindex[_index(box)].read()
            for (_, box), array in zip(selection, arrays, strict=True)
        ]
        for (key, i), future in zip(slots, futures, strict=True):
            outputs[key][i] = future.result()
        return time.perf_counter() - start


def _index(box: PatchBox) -> tuple:
    c = box.channels
    contiguous = c == tuple(range(c[0], c[0] + len(c)))
    channels = slice(c[0], c[0] + len(c)) if contiguous else list(c)
    return (box.t, channels, slice(*box.z), slice(*box.y), slice(*box.x))


def raw_seconds(selections: Sequence[Sequence[StoreBox]], cache_bytes: int) -> list[float]:
    """Seconds of each selection, read in turn through one :class:`RawTensorstore`."""
    raw = RawTensorstore(cache_bytes)
    return [raw.seconds(selection) for selection in selections]


def raw_seconds_in_fresh_process(
    selections: Sequence[Sequence[StoreBox]], cache_bytes: int
) -> list[float]:
    """:func:`raw_seconds` in a spawned process: nothing the loader did helps or hurts it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(raw_seconds, [list(s) for s in selections], cache_bytes).result()


def ratio_summary(loader_s: float, raw_s: float, samples: int, target: float = 0.5) -> dict:
    """Throughputs of the same ``samples`` by loader and raw reads, and their ratio."""
    loader_rate = samples / loader_s
    raw_rate = samples / raw_s
    value = loader_rate / raw_rate
    return {
        "loader_samples_per_s": round(loader_rate, 2),
        "raw_samples_per_s": round(raw_rate, 2),
        "loader_over_raw": round(value, 3),
        "target": target,
        "pass": bool(value >= target),
    }
