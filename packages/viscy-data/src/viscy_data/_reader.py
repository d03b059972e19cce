"""The patch-reading layer: every pipeline reads image data through :class:`PatchReader`.

Pipelines describe what they need as :class:`PatchBox` es (FOV, timepoint, channels and a
Z/Y/X window) and get one array back per batch. The reader

- reads OME-Zarr metadata (FOV names, channels, shapes) with iohub,
- reads arrays with tensorstore when installed (all boxes of a batch are issued
  asynchronously, then awaited), with zarr-python otherwise (a small thread pool),
- handles NGFF 0.4 (zarr v2) and NGFF 0.5 (zarr v3, sharded or not),
- keeps a bounded decoded-chunk cache shared by all arrays of the process
  (tensorstore ``cache_pool``), and
- is picklable: open handles are dropped when pickled and reopened lazily in each
  process, so it works in DataLoader workers under ``spawn`` as well as ``fork``.

Fork safety, by design. tensorstore runs thread pools and aborts a process that uses it
after a ``fork`` of a process that had started it (its threads do not survive the fork).
So the backend is settled per process, at its first read:

- a process that was not forked from a tensorstore user (the main process, ``spawn`` /
  ``forkserver`` workers) reads with tensorstore;
- a process forked from one (DataLoader workers under ``fork``, DDP ranks launched by
  ``fork`` / ``ddp_notebook``, a user's ``os.fork``) reads with zarr-python: the same batched
  reads on a thread pool, the same results and errors, at a comparable speed
  (``benchmarks/``); it is logged once per process, it is not an error. The handles it
  inherited are kept alive and never used there (destroying them could run tensorstore).
- the DataModules start their own worker processes with :func:`worker_start_method`:
  ``forkserver`` instead of a default ``fork`` once this process has used tensorstore, so
  their workers keep tensorstore (and its chunk cache); an explicit setting wins.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from viscy_data._blosc_partial import (
    BloscCodec,
    Unsupported,
    block_cache,
    blosc_codec,
    decode_blocks,
    getitem_function,
    row_ranges,
)

_logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 512 * 1024**2
"""Default size of the decoded-chunk cache of each process (512 MiB)."""

Backend = Literal["auto", "tensorstore", "zarr"]

# pids of processes that have opened a tensorstore array: tensorstore's threads do not survive
# fork, so a DataLoader forked from such a process must start its workers another way.
_TS_USED_IN: set[int] = set()

# Array handles and thread pools inherited through fork: kept referenced, never used or freed
# in the child (freeing a tensorstore handle there could run tensorstore code and abort).
_INHERITED: list[Any] = []
_SWITCH_LOGGED: set[int] = set()

# One tensorstore Context per (process, cache size): every array opened by any reader of this
# process with the same cache size shares one bounded pool of decoded chunks.
_TS_CONTEXTS: dict[tuple[int, int], Any] = {}
_TS_CONTEXTS_LOCK = threading.Lock()


def _tensorstore_context(cache_bytes: int) -> Any:
    import tensorstore as ts

    key = (os.getpid(), cache_bytes)
    with _TS_CONTEXTS_LOCK:
        context = _TS_CONTEXTS.get(key)
        if context is None:
            spec: dict[str, Any] = {"cache_pool": {"total_bytes_limit": int(cache_bytes)}}
            context = ts.Context(spec)
            _TS_CONTEXTS[key] = context
        return context


def tensorstore_used_in_this_process() -> bool:
    """Whether this process has opened a tensorstore array (unsafe to fork afterwards)."""
    return os.getpid() in _TS_USED_IN


def forked_from_tensorstore() -> bool:
    """Whether this process was forked from one that had started tensorstore (it must not
    use tensorstore: it would abort)."""
    return any(pid != os.getpid() for pid in _TS_USED_IN)


def worker_start_method(requested: str | None, num_workers: int) -> str | None:
    """Start method of a DataLoader's worker processes (None: torch's default).

    ``requested`` wins when given. Otherwise, once this process has used tensorstore and
    the default start method is ``fork``, ``"forkserver"``: the workers start from a clean
    server process (which preloads torch and viscy_data once) and keep tensorstore. Before
    any tensorstore use, forked workers are safe and the default is kept. Datasets must be
    picklable for ``forkserver`` / ``spawn`` workers (ours are).
    """
    import multiprocessing

    if num_workers == 0:
        return None
    if requested is not None:
        return requested
    default = multiprocessing.get_start_method(allow_none=True)
    if default is None:
        default = multiprocessing.get_context().get_start_method()
    if default == "fork" and tensorstore_used_in_this_process():
        if "forkserver" not in multiprocessing.get_all_start_methods():
            return "spawn"
        multiprocessing.set_forkserver_preload(["torch", "viscy_data"])
        _logger.info("tensorstore was used in this process: DataLoader workers use forkserver")
        return "forkserver"
    return None


def reader_threads() -> int:
    """Threads a reader decodes blosc chunks with in this process: the cores it may run on
    (its CPU affinity, e.g. a SLURM allocation), shared out among the DataLoader workers when
    it is one of them (they decode in parallel already; more threads than cores only contend),
    at most 8. 1: decode in the calling thread."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    # a DataLoader worker has imported torch already; never import it here (seconds)
    torch_data = sys.modules.get("torch.utils.data")
    info = torch_data.get_worker_info() if torch_data is not None else None
    if info is not None:
        cores //= max(1, info.num_workers)
    return max(1, min(8, cores))


def tensorstore_available() -> bool:
    """Whether tensorstore can be imported."""
    try:
        import tensorstore  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class PatchBox:
    """One box to read from one FOV.

    Parameters
    ----------
    position : str
        FOV name within the plate, e.g. ``"A/1/0"`` (``""`` for a single-FOV store).
    t : int
        Timepoint.
    channels : tuple[int, ...]
        Channel indices into the FOV's channel axis, in output order.
    z, y, x : tuple[int, int]
        Half-open ``[start, stop)`` ranges along each spatial axis.
    """

    position: str
    t: int
    channels: tuple[int, ...]
    z: tuple[int, int]
    y: tuple[int, int]
    x: tuple[int, int]

    @property
    def size(self) -> tuple[int, int, int, int]:
        """Output shape of the box: (C, Z, Y, X)."""
        return (
            len(self.channels),
            self.z[1] - self.z[0],
            self.y[1] - self.y[0],
            self.x[1] - self.x[0],
        )


class PatchReadError(OSError):
    """Reading a box failed (e.g. a damaged chunk file).

    The message names the FOV, timepoint, channels, region and the chunk file(s) the box
    touches; the original error is chained as ``__cause__``. Missing chunk files are not an
    error: they read as the array's fill value, as the zarr specification says.
    """


@dataclass(frozen=True, slots=True)
class _ArrayInfo:
    path: str  # filesystem path of the array
    shape: tuple[int, int, int, int, int]
    dtype: np.dtype
    zarr_format: int
    file_chunks: tuple[int, ...] = ()  # shape of the data in one file (chunk, or shard)
    key_prefix: str = ""  # "c/" for zarr v3 default chunk keys
    key_separator: str = "."
    blosc: BloscCodec | None = None  # set when chunks are plain blosc (partial decoding)

    def chunk_file(self, index: Sequence[int]) -> str:
        """Path of the file holding chunk (or shard) grid ``index`` (T, C, Z, Y, X)."""
        key = self.key_separator.join(str(int(i)) for i in index)
        return f"{self.path}{os.sep}{self.key_prefix}{key}"


def _file_layout(
    array_path: Path, zarr_format: int
) -> tuple[tuple[int, ...], str, str, BloscCodec | None]:
    """``(file chunk shape, key prefix, separator, blosc codec)`` from an array's zarr
    metadata (the codec is None unless its chunks are plain blosc, see ``_blosc_partial``)."""
    import json

    if zarr_format == 3:
        meta = json.loads((array_path / "zarr.json").read_text())
        shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        encoding = meta.get("chunk_key_encoding", {})
        separator = encoding.get("configuration", {}).get("separator")
        codec = blosc_codec(meta, 3)
        if encoding.get("name", "default") == "v2":
            return shape, "", separator or ".", codec
        return shape, "c" + (separator or "/"), separator or "/", codec
    meta = json.loads((array_path / ".zarray").read_text())
    return tuple(meta["chunks"]), "", meta.get("dimension_separator") or ".", blosc_codec(meta, 2)


def _open_ome_zarr(store_path: Path) -> Any:
    from iohub.ngff import open_ome_zarr

    if not store_path.exists():
        raise FileNotFoundError(f"OME-Zarr store not found: '{store_path}'")
    try:
        return open_ome_zarr(store_path, layout="auto", mode="r")
    except Exception as err:
        raise ValueError(
            f"'{store_path}' is not an OME-Zarr plate or position that iohub can open: {err}"
        ) from err


class PatchReader:
    """Batched reads of (position, t, channels, z, y, x) boxes from an OME-Zarr store.

    Parameters
    ----------
    store_path : str or Path
        An HCS OME-Zarr plate, or a single position (FOV) store.
    array_key : str
        Name of the image array within each position, ``"0"`` for full resolution.
    cache_bytes : int, optional
        Size in bytes of the per-process decoded-chunk cache (tensorstore backend). ``None``
        uses :data:`DEFAULT_CACHE_BYTES`; ``0`` disables caching.
    backend : {"auto", "tensorstore", "zarr"}
        Array library. ``"auto"`` uses tensorstore when installed, zarr-python otherwise.

    Notes
    -----
    Metadata is read once, in the constructor, and travels with the reader when pickled;
    array handles, the thread pool and the tensorstore context do not and are reopened on
    first use in each process.
    """

    # How boxes of arrays with plain blosc chunks are read: "auto" decodes only the blosc
    # blocks a read needs (kept in a per-process block cache of `cache_bytes`), "never"
    # leaves every read to the array library and its chunk cache (benchmarks compare both).
    _partial_decode: Literal["auto", "never"] = "auto"

    def __init__(
        self,
        store_path: str | Path,
        array_key: str = "0",
        cache_bytes: int | None = None,
        backend: Backend = "auto",
    ) -> None:
        if backend not in ("auto", "tensorstore", "zarr"):
            raise ValueError(f"backend must be 'auto', 'tensorstore' or 'zarr', got {backend!r}")
        if cache_bytes is not None and cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0 or None, got {cache_bytes}")
        if backend == "tensorstore":
            from viscy_data._imports import optional_import

            optional_import("tensorstore")
        elif backend == "auto":
            backend = "tensorstore" if tensorstore_available() else "zarr"
        self.store_path = Path(store_path)
        self.array_key = array_key
        self.cache_bytes = DEFAULT_CACHE_BYTES if cache_bytes is None else int(cache_bytes)
        self.backend: Literal["tensorstore", "zarr"] = backend
        self._infos: dict[str, _ArrayInfo] = {}
        self._read_metadata()
        self._arrays: dict[str, Any] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    # ---------------------------------------------------------------- metadata

    def _read_metadata(self) -> None:
        from iohub.ngff import Plate, Position

        node = _open_ome_zarr(self.store_path)
        try:
            if isinstance(node, Plate):
                positions = [(name, pos) for name, pos in node.positions()]
            elif isinstance(node, Position):
                positions = [("", node)]
            else:
                raise ValueError(
                    f"'{self.store_path}' is an OME-Zarr {type(node).__name__}, "
                    "not an HCS plate or a position"
                )
            self._channel_names = list(node.channel_names)
            self._position_names = [name for name, _ in positions]
            for name, pos in positions:
                if self.array_key not in pos.array_keys():
                    raise ValueError(
                        f"Position '{name}' of '{self.store_path}' has no image array "
                        f"'{self.array_key}' (arrays: {sorted(pos.array_keys())})"
                    )
                arr = pos[self.array_key]
                if arr.ndim != 5:
                    raise ValueError(
                        f"Array '{self.array_key}' of position '{name}' in '{self.store_path}' "
                        f"has {arr.ndim} dimensions, expected 5 (T, C, Z, Y, X)"
                    )
                path = (
                    self.store_path / name / self.array_key
                    if name
                    else (self.store_path / self.array_key)
                )
                zarr_format = int(arr.metadata.zarr_format)
                try:
                    layout = _file_layout(path, zarr_format)
                except (OSError, KeyError, ValueError):
                    layout = (tuple(int(c) for c in arr.chunks), "", ".", None)
                self._infos[name] = _ArrayInfo(
                    path=str(path),
                    shape=tuple(int(s) for s in arr.shape),
                    dtype=np.dtype(arr.dtype),
                    zarr_format=zarr_format,
                    file_chunks=tuple(int(c) for c in layout[0]),
                    key_prefix=layout[1],
                    key_separator=layout[2],
                    blosc=layout[3],
                )
        finally:
            node.close()
        if not self._position_names:
            raise ValueError(f"OME-Zarr plate '{self.store_path}' contains no positions")

    @property
    def position_names(self) -> list[str]:
        """FOV names in the store, e.g. ``["A/1/0", "A/1/1"]``."""
        return list(self._position_names)

    @property
    def channel_names(self) -> list[str]:
        """Channel names of the store, in channel-axis order."""
        return list(self._channel_names)

    def _info(self, position: str) -> _ArrayInfo:
        try:
            return self._infos[position]
        except KeyError:
            raise KeyError(
                f"Position '{position}' not found in '{self.store_path}' "
                f"(positions: {self._position_names[:10]}"
                f"{'...' if len(self._position_names) > 10 else ''})"
            ) from None

    def shape(self, position: str) -> tuple[int, int, int, int, int]:
        """Shape (T, C, Z, Y, X) of a position's image array."""
        return self._info(position).shape

    def dtype(self, position: str) -> np.dtype:
        """Data type of a position's image array."""
        return self._info(position).dtype

    # ---------------------------------------------------------------- handles

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = {}
        state["_executor"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _array(self, position: str) -> Any:
        if self._pid != os.getpid():
            # forked child: handles (and their I/O threads) belong to the parent process
            _INHERITED.append((self._arrays, self._executor))
            self._arrays = {}
            self._executor = None
            self._lock = threading.Lock()
            self._pid = os.getpid()
        array = self._arrays.get(position)
        if array is not None:
            return array
        info = self._info(position)
        with self._lock:
            array = self._arrays.get(position)
            if array is None:
                array = self._open_array(info)
                self._arrays[position] = array
        return array

    def _open_array(self, info: _ArrayInfo) -> Any:
        if self.backend == "tensorstore" and forked_from_tensorstore():
            # forked from a process that ran tensorstore: using it here would abort the
            # process, so this process reads with zarr-python (see the module docstring)
            if os.getpid() not in _SWITCH_LOGGED:
                _SWITCH_LOGGED.add(os.getpid())
                _logger.info(
                    "process %d was forked after tensorstore was used: it reads %s with "
                    "zarr-python",
                    os.getpid(),
                    self.store_path,
                )
            self.backend = "zarr"
        if self.backend == "tensorstore":
            import tensorstore as ts

            spec = {
                "driver": "zarr3" if info.zarr_format == 3 else "zarr",
                "kvstore": {"driver": "file", "path": info.path},
                # the data does not change while we train: validate cached chunks only once
                "recheck_cached_data": "open",
                "recheck_cached_metadata": "open",
            }
            context = _tensorstore_context(self.cache_bytes)
            _TS_USED_IN.add(os.getpid())
            return ts.open(spec, read=True, context=context).result()
        import zarr

        return zarr.open_array(info.path, mode="r")

    def close(self) -> None:
        """Drop open array handles and the thread pool (reopened on next read)."""
        with self._lock:
            self._arrays.clear()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None

    def __del__(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.store_path)!r}, array_key={self.array_key!r}, "
            f"cache_bytes={self.cache_bytes}, backend={self.backend!r})"
        )

    # ---------------------------------------------------------------- reads

    def chunk_files(self, box: PatchBox) -> list[str]:
        """The chunk (or shard) files a box touches, existing or not."""
        import itertools

        info = self._info(box.position)
        grid = info.file_chunks or info.shape
        ranges = [range(box.t // grid[0], box.t // grid[0] + 1)]
        ranges.append(sorted({c // grid[1] for c in box.channels}))
        for (start, stop), size in zip((box.z, box.y, box.x), grid[2:], strict=True):
            ranges.append(range(start // size, (stop - 1) // size + 1))
        return [info.chunk_file(index) for index in itertools.product(*ranges)]

    def _read_error(self, box: PatchBox, err: BaseException) -> PatchReadError:
        names = [
            self._channel_names[c] if c < len(self._channel_names) else str(c) for c in box.channels
        ]
        files = self.chunk_files(box)
        present = [f for f in files if os.path.exists(f)]
        shown = ", ".join(present[:4] or files[:4]) + (" ..." if len(files) > 4 else "")
        return PatchReadError(
            f"Cannot read FOV '{box.position}' t={box.t} channel(s) {names} "
            f"z={list(box.z)} y={list(box.y)} x={list(box.x)} of '{self.store_path}' "
            f"(chunk file(s): {shown}): {type(err).__name__}: {err}"
        )

    def _check_box(self, box: PatchBox) -> None:
        t_size, c_size, z_size, y_size, x_size = self._info(box.position).shape
        where = f"position '{box.position}' of '{self.store_path}'"
        if not 0 <= box.t < t_size:
            raise ValueError(f"Box out of bounds on axis T in {where}: t={box.t}, size {t_size}")
        if not box.channels:
            raise ValueError(f"Box with no channels requested from {where}")
        for c in box.channels:
            if not 0 <= c < c_size:
                raise ValueError(
                    f"Box out of bounds on axis C in {where}: channel {c}, size {c_size}"
                )
        for axis, (start, stop), size in (
            ("Z", box.z, z_size),
            ("Y", box.y, y_size),
            ("X", box.x, x_size),
        ):
            if not 0 <= start < stop <= size:
                raise ValueError(
                    f"Box out of bounds on axis {axis} in {where}: [{start}, {stop}), size {size}"
                )

    @staticmethod
    def _channel_index(channels: tuple[int, ...]) -> slice | list[int]:
        first = channels[0]
        if channels == tuple(range(first, first + len(channels))):
            return slice(first, first + len(channels))
        return list(channels)

    def _read_one_zarr(self, box: PatchBox) -> np.ndarray:
        array = self._array(box.position)
        region = (slice(*box.z), slice(*box.y), slice(*box.x))
        channel = self._channel_index(box.channels)
        if isinstance(channel, slice):
            return np.asarray(array[(box.t, channel, *region)])
        return np.stack([np.asarray(array[(box.t, c, *region)]) for c in box.channels])

    def _read_one_zarr_checked(self, box: PatchBox) -> np.ndarray:
        try:
            return self._read_one_zarr(box)
        except Exception as err:
            raise self._read_error(box, err) from err

    # ---------------------------------------------------------------- partial decoding

    def _chunk_pieces(
        self, box: PatchBox, codec: BloscCodec
    ) -> list[tuple[str, int, tuple[int, int], range, tuple, tuple, tuple[int, int, int]]]:
        """The parts of a box in each chunk file: ``(file, output channel, (t, c) in the
        chunk, z range, y range, x range in the chunk, (z, y, x) offset in the box)``."""
        info = self._info(box.position)
        ct, cc, cz, cy, cx = codec.chunk_shape
        pieces = []
        for ci, c in enumerate(box.channels):
            for kz in range(box.z[0] // cz, (box.z[1] - 1) // cz + 1):
                z0, z1 = max(box.z[0], kz * cz), min(box.z[1], (kz + 1) * cz)
                for ky in range(box.y[0] // cy, (box.y[1] - 1) // cy + 1):
                    y0, y1 = max(box.y[0], ky * cy), min(box.y[1], (ky + 1) * cy)
                    for kx in range(box.x[0] // cx, (box.x[1] - 1) // cx + 1):
                        x0, x1 = max(box.x[0], kx * cx), min(box.x[1], (kx + 1) * cx)
                        path = info.chunk_file((box.t // ct, c // cc, kz, ky, kx))
                        pieces.append(
                            (
                                path,
                                ci,
                                (box.t % ct, c % cc),
                                range(z0 - kz * cz, z1 - kz * cz),
                                (y0 - ky * cy, y1 - ky * cy),
                                (x0 - kx * cx, x1 - kx * cx),
                                (z0 - box.z[0], y0 - box.y[0], x0 - box.x[0]),
                            )
                        )
        return pieces

    def _read_partial(
        self, boxes: Sequence[PatchBox], out: np.ndarray, rows: list[int]
    ) -> tuple[list[PatchBox], list[int]]:
        """Read the boxes of arrays with plain blosc chunks by decoding only the blosc blocks
        they need (see ``_blosc_partial``), into ``out``; return the boxes (and rows) left
        for the array library (other codecs, and chunks it cannot decode: those also get the
        library's error naming the file)."""
        if self._partial_decode == "never" or getitem_function() is None:
            return list(boxes), rows
        rest: list[int] = []
        # per chunk file: its codec, the byte ranges needed and the pieces to copy out
        chunks: dict[str, tuple[BloscCodec, list, list]] = {}
        for k, box in enumerate(boxes):
            codec = self._info(box.position).blosc
            if codec is None:
                rest.append(k)
                continue
            for path, ci, lead, z, y, x, offset in self._chunk_pieces(box, codec):
                entry = chunks.setdefault(path, (codec, [], []))
                entry[1].append(row_ranges(codec.chunk_shape, codec.dtype.itemsize, lead, z, y, x))
                entry[2].append((k, ci, lead, z, y, x, offset))
        if not chunks:
            return list(boxes), rows
        cache = block_cache(self.cache_bytes)
        failed: set[int] = set()

        def decode(path: str) -> None:
            codec, ranges, pieces = chunks[path]
            blocks = cache.blocks(path, codec.nbytes)
            try:
                if blocks is None:
                    data = decode_blocks(path, codec.nbytes, np.concatenate(ranges))
                else:
                    with blocks.lock:
                        data = decode_blocks(path, codec.nbytes, np.concatenate(ranges), blocks)
                    cache.account(path, blocks)
            except (Unsupported, OSError, ValueError):
                failed.update(p[0] for p in pieces)
                return
            if data is None and codec.fill_value is None:
                failed.update(p[0] for p in pieces)
                return
            chunk = None if data is None else data[: codec.nbytes].view(codec.dtype)
            if chunk is not None:
                chunk = chunk.reshape(codec.chunk_shape)
            for k, ci, lead, z, y, x, (oz, oy, ox) in pieces:
                target = out[
                    rows[k], ci, oz : oz + len(z), oy : oy + y[1] - y[0], ox : ox + x[1] - x[0]
                ]
                if chunk is None:
                    target[...] = codec.fill_value
                else:
                    target[...] = chunk[(*lead, slice(z.start, z.stop), slice(*y), slice(*x))]

        jobs = list(chunks)
        if len(jobs) > 1 and reader_threads() > 1:
            list(self._pool().map(decode, jobs))
        else:
            for path in jobs:
                decode(path)
        rest = sorted(set(rest) | failed)
        return [boxes[k] for k in rest], [rows[k] for k in rest]

    def read_patches(self, boxes: Sequence[PatchBox], out: np.ndarray | None = None) -> np.ndarray:
        """Read many boxes in one batched call.

        Parameters
        ----------
        boxes : Sequence[PatchBox]
            Boxes of identical size (channels count and Z/Y/X extents).
        out : np.ndarray, optional
            Array of shape (N, C, Z, Y, X) to read into (e.g. a view of shared memory or a
            recycled batch buffer); values are cast to its dtype.

        Returns
        -------
        np.ndarray
            Array of shape (N, C, Z, Y, X) in the store's data type, box ``i`` at row ``i``.

        Notes
        -----
        Each distinct box is read once, straight into its first row of the output; rows of
        repeated boxes are then copied from it (no intermediate array, no gather copy).

        Raises
        ------
        ValueError
            If the boxes differ in size, or a box lies outside its array (the message names
            the position and the axis).
        PatchReadError
            If the data of a box cannot be read or decoded (naming the FOV, timepoint,
            channels and chunk files). Missing chunk files read as the fill value.
        """
        if len(boxes) == 0:
            raise ValueError("read_patches needs at least one box")
        size = boxes[0].size
        for box in boxes:
            if box.size != size:
                raise ValueError(
                    f"All boxes of one read_patches call must have the same size; got {size} "
                    f"and {box.size} (position '{box.position}')"
                )
            self._check_box(box)
        if out is None:
            dtypes = {self._info(box.position).dtype for box in boxes}
            dtype = dtypes.pop() if len(dtypes) == 1 else np.result_type(*dtypes)
            out = np.empty((len(boxes), *size), dtype=dtype)
        elif out.shape != (len(boxes), *size):
            raise ValueError(f"out has shape {out.shape}, expected {(len(boxes), *size)}")
        self._array(boxes[0].position)  # (re)opens handles: settles the backend after a fork
        # each distinct box is read once, into the first row that asks for it
        first: dict[PatchBox, int] = {}
        repeats: list[tuple[int, int]] = []  # (row, row it copies)
        for i, box in enumerate(boxes):
            j = first.setdefault(box, i)
            if j != i:
                repeats.append((i, j))
        if repeats:
            rows = list(first.values())
            self._read_rows_into([boxes[i] for i in rows], out, rows)
            for i, j in repeats:
                out[i] = out[j]
        else:
            self._read_rows_into(boxes, out, None)
        return out

    def _read_rows_into(
        self, boxes: Sequence[PatchBox], out: np.ndarray, rows: list[int] | None
    ) -> None:
        """Read ``boxes[k]`` into ``out[rows[k]]`` (``out[k]`` when ``rows`` is None)."""
        if rows is None:
            rows = list(range(len(boxes)))
        boxes, rows = self._read_partial(boxes, out, rows)
        if not boxes:
            return
        if self.backend == "tensorstore":
            import tensorstore as ts

            sources = []
            for box in boxes:
                array = self._array(box.position)
                index = (
                    box.t,
                    self._channel_index(box.channels),
                    slice(*box.z),
                    slice(*box.y),
                    slice(*box.x),
                )
                sources.append(array.oindex[index])
            if out.flags.c_contiguous and out.flags.writeable:
                # tensorstore copies every box straight into `out` (one copy, no temporaries)
                target = ts.array(out, copy=False, write=True)
                futures = [target[i].write(src) for i, src in zip(rows, sources, strict=True)]
                for k, future in enumerate(futures):
                    try:
                        future.result()
                    except Exception as err:
                        raise self._read_error(boxes[k], err) from err
            else:
                reads = [src.read() for src in sources]
                for k, (i, future) in enumerate(zip(rows, reads, strict=True)):
                    try:
                        out[i] = future.result()
                    except Exception as err:
                        raise self._read_error(boxes[k], err) from err
            return
        if len(boxes) == 1:
            out[rows[0]] = self._read_one_zarr_checked(boxes[0])
            return
        patches = self._pool().map(self._read_one_zarr_checked, boxes)
        for i, patch in zip(rows, patches, strict=True):
            out[i] = patch

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=max(2, reader_threads()), thread_name_prefix="patch-reader"
            )
        return self._executor

    def read_patch(self, box: PatchBox) -> np.ndarray:
        """Read one box; returns an array of shape (C, Z, Y, X)."""
        return self.read_patches([box])[0]
