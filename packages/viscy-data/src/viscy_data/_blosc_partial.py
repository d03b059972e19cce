"""Partial decoding of blosc chunks: decode only the blosc blocks a read needs.

A blosc (version 1 format) chunk is a sequence of independently compressed blocks of
``blocksize`` bytes of the decoded chunk (32 KiB for iohub's default chunks: 16 rows of a
1024-wide uint16 image). A 5 x 256 x 256 box of a 8 x 1024 x 1024 chunk lies in about a sixth
of its blocks, so decoding only those is several times cheaper than decoding the chunk, which is
what tensorstore and zarr-python do. This module

- recognises arrays whose chunks are plain blosc (:func:`blosc_codec`: zarr v2 compressor
  blosc without filters, or zarr v3 codecs ``[bytes, blosc]`` without sharding, native byte
  order, C order),
- reads only the compressed bytes of the needed blocks of a chunk file (``os.pread``), checks
  that every size it is about to follow stays inside the file (a damaged file is refused, never
  read out of bounds), and decodes the needed block runs with c-blosc's ``blosc_getitem``
  (exported by ``numcodecs``' blosc extension, loaded with :mod:`ctypes`) straight into a
  buffer with the chunk's layout (:func:`decode_blocks`), and
- keeps, per process, the decoded blocks in a bounded cache (:class:`BlockCache`, the size of
  the reader's decoded-chunk cache, used instead of tensorstore's for these arrays): a chunk
  costs at most one full decode however it is read, and a chunk read again costs a copy.

Anything it cannot decode safely raises :class:`Unsupported`: the caller reads those boxes the
usual way (which also gives the usual error, naming the file, for a damaged chunk).
``blosc_getitem`` builds its own context on each call (no global state, no threads), so it is
safe from several threads at once and after ``fork``; :mod:`ctypes` releases the GIL while it
runs.
"""

from __future__ import annotations

import ctypes
import importlib.util
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BloscCodec",
    "BlockCache",
    "ChunkBlocks",
    "Unsupported",
    "blosc_codec",
    "decode_blocks",
    "getitem_function",
    "block_cache",
    "row_ranges",
]

_HEADER = 16
_MEMCPYED = 0x02
_DONT_SPLIT = 0x10


class Unsupported(Exception):
    """This chunk (or array) cannot be decoded partially; read it the usual way."""


@dataclass(frozen=True, slots=True)
class BloscCodec:
    """An array whose chunks are plain blosc: what partial decoding needs to know.

    Parameters
    ----------
    chunk_shape : tuple of int
        Shape of one chunk (one file).
    dtype : np.dtype
        Data type of the decoded chunk (native byte order).
    fill_value : int or float or None
        Value of missing chunks (None: unknown, missing chunks are read the usual way).
    """

    chunk_shape: tuple[int, ...]
    dtype: np.dtype
    fill_value: int | float | None

    @property
    def nbytes(self) -> int:
        """Decoded size of one chunk in bytes."""
        return math.prod(self.chunk_shape) * self.dtype.itemsize


def _fill_value(value: Any, dtype: np.dtype) -> int | float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and dtype.kind == "f" and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    return None


def blosc_codec(meta: dict[str, Any], zarr_format: int) -> BloscCodec | None:
    """The :class:`BloscCodec` of an array from its zarr metadata (``.zarray`` or
    ``zarr.json`` contents), or None when its chunks are not plain blosc."""
    try:
        if zarr_format == 2:
            compressor = meta.get("compressor") or {}
            if compressor.get("id") != "blosc" or meta.get("filters") or meta.get("order") != "C":
                return None
            dtype = np.dtype(meta["dtype"])
            chunk_shape = tuple(int(c) for c in meta["chunks"])
        elif zarr_format == 3:
            grid = meta.get("chunk_grid", {})
            if grid.get("name") != "regular" or meta.get("storage_transformers"):
                return None
            codecs = meta.get("codecs", [])
            if [c.get("name") for c in codecs] != ["bytes", "blosc"]:
                return None
            dtype = np.dtype(meta["data_type"])
            endian = (codecs[0].get("configuration") or {}).get("endian")
            if dtype.itemsize > 1:
                if endian not in ("little", "big"):
                    return None
                dtype = dtype.newbyteorder("<" if endian == "little" else ">")
            chunk_shape = tuple(int(c) for c in grid["configuration"]["chunk_shape"])
        else:
            return None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if dtype.kind not in "biuf" or not dtype.isnative:
        return None
    return BloscCodec(chunk_shape, np.dtype(dtype.str), _fill_value(meta.get("fill_value"), dtype))


_GETITEM: Callable[..., int] | None = None
_GETITEM_LOADED = False
_GETITEM_LOCK = threading.Lock()


def _load_getitem(library: str | None) -> Callable[..., int] | None:
    if library is None:
        spec = importlib.util.find_spec("numcodecs.blosc")
        library = spec.origin if spec is not None else None
    if not library:
        return None
    try:
        function = ctypes.CDLL(library).blosc_getitem
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


def getitem_function(library: str | None = None) -> Callable[..., int] | None:
    """c-blosc's ``blosc_getitem`` from ``library`` (default: numcodecs' blosc extension),
    or None when it cannot be loaded (partial decoding is then off)."""
    global _GETITEM, _GETITEM_LOADED
    if library is not None:
        return _load_getitem(library)
    if not _GETITEM_LOADED:
        with _GETITEM_LOCK:
            if not _GETITEM_LOADED:
                _GETITEM = _load_getitem(None)
                _GETITEM_LOADED = True
    return _GETITEM


def _pread_into(fd: int, buffer: np.ndarray, start: int, stop: int) -> None:
    view = memoryview(buffer)[start:stop]
    done = 0
    while done < stop - start:
        n = os.preadv(fd, [view[done:]], start + done)
        if n <= 0:
            raise Unsupported("chunk file shorter than its header says")
        done += n


_BUFFERS = threading.local()


def _buffer(name: str, nbytes: int) -> np.ndarray:
    """A per-thread reusable byte buffer of at least ``nbytes``."""
    buffer = getattr(_BUFFERS, name, None)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = np.empty(nbytes, dtype=np.uint8)
        setattr(_BUFFERS, name, buffer)
    return buffer


def _int32_at(src: np.ndarray, positions: np.ndarray) -> np.ndarray:
    b = src[positions[:, None] + np.arange(4)].astype(np.int64)
    value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
    return np.where(value >= 2**31, value - 2**32, value)


class ChunkBlocks:
    """The decoded blocks of one chunk kept so far: a buffer with the chunk's layout and a
    mask of the blocks it holds."""

    __slots__ = ("blocksize", "data", "have", "lock", "stamp")

    def __init__(self, nbytes: int, stamp: tuple[int, int] | None = None) -> None:
        self.data = np.empty(nbytes, dtype=np.uint8)  # pages are committed as blocks land
        self.blocksize = 0  # known after the first read of the file
        self.have = np.zeros(0, dtype=bool)
        self.lock = threading.Lock()
        self.stamp = stamp  # (mtime_ns, size) of the file the blocks come from


def _needed_blocks(byte_ranges: np.ndarray, blocksize: int, nblocks: int) -> np.ndarray:
    """Mask of the blocks covering ``byte_ranges`` (N x 2 half-open ranges)."""
    edges = np.zeros(nblocks + 1, dtype=np.int32)
    np.add.at(edges, byte_ranges[:, 0] // blocksize, 1)
    np.add.at(edges, (byte_ranges[:, 1] - 1) // blocksize + 1, -1)
    return np.cumsum(edges[:-1]) > 0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[first, stop)`` runs of True in a boolean mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.view(np.int8), [0]])))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def decode_blocks(
    path: str,
    nbytes: int,
    byte_ranges: np.ndarray,
    blocks: ChunkBlocks | None = None,
    getitem: Callable[..., int] | None = None,
) -> np.ndarray | None:
    """Decode the blocks of the blosc chunk file ``path`` that cover ``byte_ranges``.

    Parameters
    ----------
    path : str
        Chunk file.
    nbytes : int
        Decoded size of the chunk.
    byte_ranges : np.ndarray
        N x 2 half-open ranges of decoded bytes needed.
    blocks : ChunkBlocks, optional
        Blocks of this chunk decoded before (only the missing ones are decoded, then kept
        there); None decodes into a per-thread buffer, valid until this thread's next call.
    getitem : callable, optional
        ``blosc_getitem`` (default: :func:`getitem_function`).

    Returns
    -------
    np.ndarray or None
        A uint8 buffer of ``nbytes`` whose bytes inside ``byte_ranges`` hold the decoded
        chunk; None when the file does not exist (the chunk holds the fill value).

    Raises
    ------
    Unsupported
        When the file is not a blosc chunk of this size, a size in it points outside the file,
        or blosc reports an error.
    """
    if blocks is not None and blocks.blocksize:
        missing = _needed_blocks(byte_ranges, blocks.blocksize, len(blocks.have)) & ~blocks.have
        if not missing.any():
            return blocks.data
    getitem = getitem or getitem_function()
    if getitem is None:
        raise Unsupported("blosc_getitem is not available")
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, _HEADER, 0)
        if len(head) < _HEADER:
            raise Unsupported("not a blosc chunk")
        version, flags, typesize = head[0], head[2], head[3]
        nb, bs, cb = (int.from_bytes(head[i : i + 4], "little", signed=True) for i in (4, 8, 12))
        if not (
            1 <= version <= 2
            and nb == nbytes
            and cb == size
            and typesize > 0
            and bs > 0
            and bs % typesize == 0
            and nb % typesize == 0
        ):
            raise Unsupported("not a blosc (v1 format) chunk of the expected size")
        nblocks = -(-nb // bs)
        missing = _needed_blocks(byte_ranges, bs, nblocks)
        if blocks is not None:
            if not blocks.blocksize:
                blocks.blocksize, blocks.have = bs, np.zeros(nblocks, dtype=bool)
            elif blocks.blocksize != bs:
                raise Unsupported("chunk file changed while being read")
            missing &= ~blocks.have
            dest = blocks.data
        else:
            dest = _buffer("dest", nb)
        runs = _runs(missing)
        if flags & _MEMCPYED:  # stored uncompressed
            if cb != nb + _HEADER:
                raise Unsupported("bad size of an uncompressed blosc chunk")
            for b0, b1 in runs:
                start, stop = b0 * bs, min(b1 * bs, nb)
                view = memoryview(dest)[start:stop]
                if os.preadv(fd, [view], _HEADER + start) != stop - start:
                    raise Unsupported("short read")
        else:
            _decode_runs(fd, head, flags, typesize, nb, bs, cb, runs, dest, getitem)
        if blocks is not None:
            blocks.have |= missing
        return dest
    finally:
        os.close(fd)


def _decode_runs(
    fd: int,
    head: bytes,
    flags: int,
    typesize: int,
    nb: int,
    bs: int,
    cb: int,
    runs: list[tuple[int, int]],
    dest: np.ndarray,
    getitem: Callable[..., int],
) -> None:
    """Read the compressed bytes of the blocks in ``runs``, check them, decode into ``dest``."""
    if not runs:
        return
    nblocks = -(-nb // bs)
    data_start = _HEADER + 4 * nblocks
    if data_start > cb:
        raise Unsupported("blosc block table beyond the end of the file")
    src = _buffer("src", cb)
    src[:_HEADER] = np.frombuffer(head, dtype=np.uint8)
    _pread_into(fd, src, _HEADER, data_start)
    starts = src[_HEADER:data_start].view("<i4").astype(np.int64)
    if starts.min() < data_start or starts.max() >= cb:
        raise Unsupported("blosc block offset outside the file")
    needed = np.concatenate([np.arange(b0, b1) for b0, b1 in runs])
    # a block's bytes end where the next block (in file order) begins
    bounds = np.unique(np.append(starts, cb))
    ends = bounds[np.searchsorted(bounds, starts[needed], side="right")]
    first = starts[needed]
    order = np.argsort(first)
    lo, hi = -1, -1
    for a, b in zip(first[order].tolist(), ends[order].tolist(), strict=True):
        if a <= hi:
            hi = max(hi, b)
            continue
        if hi > lo:
            _pread_into(fd, src, lo, hi)
        lo, hi = a, b
    if hi > lo:
        _pread_into(fd, src, lo, hi)
    # every stream size blosc will follow must stay inside its block's bytes
    leftover = nb % bs
    splits = np.where(
        (flags & _DONT_SPLIT) | ((needed == nblocks - 1) & (leftover > 0)), 1, typesize
    )
    pos = first.copy()
    for s in range(int(splits.max())):
        active = splits > s
        p = pos[active]
        if (p + 4 > ends[active]).any():
            raise Unsupported("blosc stream header outside its block")
        csize = _int32_at(src, p)
        if (csize < 0).any() or (p + 4 + csize > ends[active]).any():
            raise Unsupported("blosc stream size outside its block")
        pos[active] = p + 4 + csize
    src_ptr = src.ctypes.data
    dest_ptr = dest.ctypes.data
    for b0, b1 in runs:
        start, stop = b0 * bs, min(b1 * bs, nb)
        written = getitem(src_ptr, start // typesize, (stop - start) // typesize, dest_ptr + start)
        if written != stop - start:
            raise Unsupported(f"blosc_getitem returned {written}")


def row_ranges(
    chunk_shape: Sequence[int], itemsize: int, lead: Sequence[int], z: range, y: tuple, x: tuple
) -> np.ndarray:
    """Byte ranges (N x 2) of a chunk holding ``chunk[*lead, z, y0:y1, x0:x1]`` (one range
    per z: from the first to the last needed element of that slice)."""
    *_, cy, cx = chunk_shape
    index = 0
    for i, n in zip(lead, chunk_shape[: len(lead)], strict=True):
        index = index * n + i
    zs = np.arange(z.start, z.stop, dtype=np.int64)
    base = (index * chunk_shape[len(lead)] + zs) * cy
    first = (base + y[0]) * cx + x[0]
    last = (base + y[1] - 1) * cx + x[1]
    return np.stack([first * itemsize, last * itemsize], axis=1)


class BlockCache:
    """Per-process cache of decoded blosc blocks, chunk by chunk, least recently used first
    out, bounded by the bytes of the blocks it holds.

    Reads of a chunk decode only the blocks they need that the cache lacks, so a chunk costs
    at most one full decode however it is read (and much less when only parts of it are
    read), and a chunk read again costs a copy.

    Parameters
    ----------
    capacity : int
        Bytes of decoded blocks kept (0: keep nothing).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self._chunks: OrderedDict[str, ChunkBlocks] = OrderedDict()
        self._bytes: dict[str, int] = {}
        self._total = 0
        self._lock = threading.Lock()
        self.hits = 0  # reads served without decoding anything
        self.misses = 0  # reads that decoded blocks

    def blocks(self, path: str, nbytes: int) -> ChunkBlocks | None:
        """The cached blocks of chunk file ``path`` (created empty when absent, or when the
        file changed since: its modification time and size are checked on every read); None
        when the cache keeps nothing, the chunk alone exceeds it, or the file is missing."""
        if self.capacity <= 0 or nbytes > self.capacity:
            return None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            found = self._chunks.get(path)
            if found is None or found.stamp != stamp:
                found = self._chunks[path] = ChunkBlocks(nbytes, stamp)
                self._total -= self._bytes.get(path, 0)
                self._bytes[path] = 0
            else:
                self._chunks.move_to_end(path)
            return found

    def account(self, path: str, blocks: ChunkBlocks) -> None:
        """Charge the blocks now held for ``path``; evict the least recently used chunks
        beyond the capacity (a reader still copying from one keeps its buffer alive)."""
        held = int(blocks.have.sum()) * blocks.blocksize
        with self._lock:
            if self._chunks.get(path) is not blocks:
                return
            if held == self._bytes[path]:
                self.hits += 1
            else:
                self.misses += 1
            self._total += held - self._bytes[path]
            self._bytes[path] = held
            while self._total > self.capacity and len(self._chunks) > 1:
                old, _ = self._chunks.popitem(last=False)
                self._total -= self._bytes.pop(old)

    @property
    def nbytes(self) -> int:
        """Bytes of decoded blocks held."""
        return self._total

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._chunks.clear()
            self._bytes.clear()
            self._total = 0


_CACHES: dict[tuple[int, int], BlockCache] = {}
_CACHES_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    # a lock held by another thread of the parent at fork time would never be released here
    global _CACHES_LOCK, _GETITEM_LOCK
    _CACHES_LOCK = threading.Lock()
    _GETITEM_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def block_cache(cache_bytes: int) -> BlockCache:
    """The :class:`BlockCache` of this process for ``cache_bytes`` (every reader of a
    process with the same cache size shares it, as they share one tensorstore cache)."""
    key = (os.getpid(), int(cache_bytes))
    with _CACHES_LOCK:
        found = _CACHES.get(key)
        if found is None:
            found = _CACHES[key] = BlockCache(cache_bytes)
        return found
