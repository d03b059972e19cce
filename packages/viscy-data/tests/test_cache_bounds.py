"""Bounded caches: memory stays within the budget (plus one chunk) and, on a plate twice the
cache, the part that fits is served from the cache.

- the reader's decoded-chunk cache (tensorstore ``cache_pool``) evicts least recently used
  chunks and stays within its budget. Measured: with random access over data twice the
  budget, fewer reads hit than the ideal half (tensorstore's per-entry accounting leaves
  room for less than the budget suggests; about 16 % of warm reads here), so the test
  asserts the bound, that a larger budget hits more, and that data within it is all hits;
  the same holds for the block cache of partial blosc decoding (``_blosc_partial``), which
  serves plain-blosc arrays instead;
- the whole-volume :class:`~viscy_data._cache.VolumeCache` admits volumes in priority order up
  to its budget and keeps them (no eviction): under the cyclic access of training epochs,
  where LRU would evict every volume just before it is asked for again (0 % hits), the volumes
  that fit are hits every epoch.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from viscy_data import PatchBox, PatchReader
from viscy_data._cache import VolumeCache
from viscy_data.synthetic import write_synthetic_plate

pytest.importorskip("tensorstore")

SHAPE = (16, 2, 4, 128, 128)  # one chunk per (t, c): 128 KiB; 64 chunks = 8 MiB per plate
CHUNK = 4 * 128 * 128 * 2
DATA = 2 * 16 * 2 * CHUNK


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return write_synthetic_plate(
        root / "plate.zarr", shape=SHAPE, wells=(("A", "1"),), fovs_per_well=2, seed=6
    )


def _boxes() -> list[PatchBox]:
    return [
        PatchBox(f"A/1/{f}", t, (c,), (0, 4), (0, 128), (0, 128))
        for f in range(2)
        for t in range(16)
        for c in range(2)
    ]


def _rss() -> int:
    """Resident memory, after returning freed heap pages to the system (glibc)."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _metric(name: str, reader: PatchReader) -> int:
    """Hits or misses of the reader's cache: tensorstore's, or the block cache of partial
    blosc decoding."""
    if reader._partial_decode == "never":
        import tensorstore as ts

        for metric in ts.experimental_collect_matching_metrics(f"/tensorstore/cache/{name}"):
            return int(metric["values"][0].get("value", 0))
        return 0
    from viscy_data._blosc_partial import block_cache

    cache = block_cache(reader.cache_bytes)
    return cache.hits if name == "hit_count" else cache.misses


def _random_passes(reader: PatchReader, passes: int, seed: int) -> tuple[int, float]:
    """Largest RSS growth retained after each of ``passes`` shuffled passes, and the hit rate."""
    boxes = _boxes()
    reader.read_patch(boxes[0])
    base = _rss()
    hits0, misses0 = _metric("hit_count", reader), _metric("miss_count", reader)
    peak = 0
    rng = np.random.default_rng(seed)
    for _ in range(passes):
        for i in rng.permutation(len(boxes)):
            reader.read_patch(boxes[i])  # one at a time: no batching of identical chunks
        peak = max(peak, _rss() - base)  # what the cache retains after each pass
    hits = _metric("hit_count", reader) - hits0
    misses = _metric("miss_count", reader) - misses0
    return peak, hits / max(hits + misses, 1)


def _measure(path: str, mode: str) -> dict[str, float]:
    """RSS growth and hit rates of an uncached, a half-size and a full-size cache."""

    def reader(cache_bytes: int) -> PatchReader:
        made = PatchReader(path, cache_bytes=cache_bytes)
        made._partial_decode = mode
        return made

    baseline, cold = _random_passes(reader(0), 2, 0)
    growth, half = _random_passes(reader(DATA // 2), 6, 1)
    _, full = _random_passes(reader(2 * DATA), 6, 2)
    return {"baseline": baseline, "cold": cold, "growth": growth, "half": half, "full": full}


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="Linux RSS")
@pytest.mark.parametrize("mode", ["never", "auto"])  # tensorstore's cache; the block cache
def test_decoded_chunk_cache_bound_and_lru_hit_rate(plate, mode):
    # measured in a fresh interpreter: the test process's RSS carries what earlier tests
    # allocated and freed (allocator arenas, other tests' thread pools)
    import inspect
    import json
    import subprocess
    import sys

    helpers = [_boxes, _rss, _metric, _random_passes, _measure]
    script = "\n".join(
        [
            "import ctypes, json, os, sys",
            "import numpy as np",
            "from viscy_data import PatchBox, PatchReader",
            f"CHUNK = {CHUNK}",
            f"DATA = {DATA}",
            *(inspect.getsource(f) for f in helpers),
            "print(json.dumps(_measure(sys.argv[1], sys.argv[2])))",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(plate.path), mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    m = json.loads(out.stdout.strip().splitlines()[-1])
    baseline, cold, growth, half, full = (
        m["baseline"], m["cold"], m["growth"], m["half"], m["full"]
    )  # fmt: skip
    budget = DATA // 2
    assert cold < 0.05  # nothing cached
    # the pool never holds more than the budget: growth <= budget + one chunk (+ what the
    # uncached reader itself needs, measured above, + 2 MiB of allocator and entry overhead)
    assert growth <= baseline + budget + CHUNK + 2 * 1024**2, (growth, baseline, budget)
    assert growth > budget // 2  # and it is used
    assert cold < half < full, (cold, half, full)
    assert full > 0.8, full  # 6 passes: all but the first pass served from the cache


def test_volume_cache_bound_and_hit_rate_on_twice_the_data(tmp_path):
    shape, dtype = (2, 4, 32, 32), np.dtype("uint16")
    nbytes = int(np.prod(shape)) * dtype.itemsize
    layout = [((f"A/1/{i % 2}", i), shape, dtype) for i in range(20)]
    cache = VolumeCache(layout, max_bytes=10 * nbytes, directory=tmp_path, name="bound")
    assert cache.capacity == 10 and cache.nbytes <= cache.max_bytes
    assert os.path.getsize(cache.path) <= cache.max_bytes + 64  # + the flags header
    volumes = {key: np.full(shape, i, dtype) for i, (key, _, _) in enumerate(layout)}
    hits = reads = 0
    for _epoch in range(3):  # cyclic epochs, as a training loop reads
        for key, _, _ in layout:
            reads += 1
            got = cache.get(key)
            if got is None:
                cache.put(key, volumes[key])
            else:
                hits += 1
                np.testing.assert_array_equal(got, volumes[key])
    assert len(cache) == 10  # never more than the budget
    # epochs 2 and 3 serve the half that fits from the cache (LRU would serve none)
    assert hits == 2 * 10 and hits / reads == pytest.approx(1 / 3)
    cache.close()
    assert not os.path.exists(cache.path)
