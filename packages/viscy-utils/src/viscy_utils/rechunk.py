"""A training-optimized copy of an OME-Zarr store (the ``viscy rechunk`` command).

Training reads small random boxes (a few Z slices, a few hundred pixels in Y and X) from
large stacks. With the chunks microscopes and converters usually write (one whole ZYX stack,
or one YX plane, per chunk), every box decodes megabytes to use kilobytes, and once the plate
is larger than the decoded-chunk cache this decoding is what sets the speed of training.

:func:`rechunk_store` writes a copy whose image arrays are zarr v3 *sharded*: small inner
chunks (default ``(1, 1, 1, 128, 128)``, or sized from the patch you train on) so a box
decodes little more than itself, grouped into one shard file per ``(t, c)`` stack so the copy has
about as many files as the original. Everything else is kept: the hierarchy, every array
(labels, masks, pyramid levels), the NGFF metadata and any other attributes (normalization
statistics included), data type, fill value and compression. A zarr v2 (NGFF 0.4) source
becomes NGFF 0.5 (zarr v3), the only version that has sharding.

The copy is written to ``.<DST name>.rechunk-partial`` next to ``DST`` and renamed to
``DST`` once complete; each FOV is written to a temporary name and renamed when done, so an
interrupted run can be resumed by running the same command again (finished FOVs are kept).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_PATCH",
    "DEFAULT_SHARD",
    "RechunkResult",
    "rechunk_main",
    "rechunk_store",
    "training_layout",
]

DEFAULT_PATCH: tuple[int, int, int, int, int] = (1, 1, 1, 128, 128)
"""Default inner chunk (T, C, Z, Y, X) of a rechunked image array.

One Z plane of 128 x 128: a 192 x 192 (triplet) or 256 x 256 (HCS) box at a random offset
decodes about 2.8 and 2.3 times its own size (with 256 x 256 inner chunks: 5.4 and 4 times),
and the few chunks per box keep the per-chunk overhead small
(``python -m benchmarks.loaders layout``)."""

DEFAULT_SHARD: tuple[int, int, int, int, int] = (1, 1, -1, -1, -1)
"""Default shard (T, C, Z, Y, X): one shard per (t, c) stack (``-1``: the whole axis)."""

_MANIFEST = "rechunk.json"
_NGFF_KEYS = ("multiscales", "omero", "plate", "well", "labels", "image-label")


@dataclass
class RechunkResult:
    """What :func:`rechunk_store` did.

    Attributes
    ----------
    path : Path
        The rechunked store.
    fovs_written, fovs_resumed : list of str
        FOVs (groups holding an NGFF image) written by this call, and those a previous,
        interrupted call had already finished.
    arrays : dict
        Array path (relative to the store) -> ``{"chunks": [...], "shards": [...]}``.
    bytes : int
        Uncompressed bytes copied by this call.
    seconds : float
        Wall time of this call.
    """

    path: Path
    fovs_written: list[str] = field(default_factory=list)
    fovs_resumed: list[str] = field(default_factory=list)
    arrays: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    bytes: int = 0
    seconds: float = 0.0


def training_layout(
    shape: Sequence[int],
    patch: Sequence[int] = DEFAULT_PATCH,
    shard: Sequence[int] = DEFAULT_SHARD,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Inner chunk and shard shapes for a 5-D (T, C, Z, Y, X) array.

    Parameters
    ----------
    shape : sequence of int
        Array shape.
    patch : sequence of int
        Wanted inner chunk; clipped to the array shape.
    shard : sequence of int
        Wanted shard; ``-1`` (or any value <= 0) means the whole axis. Rounded up to a
        multiple of the inner chunk, as zarr v3 sharding requires.

    Returns
    -------
    (chunks, shards) : tuple of tuple of int
    """
    if len(shape) != len(patch) or len(shape) != len(shard):
        raise ValueError(
            f"patch {tuple(patch)} and shard {tuple(shard)} need one entry per axis of an "
            f"array of shape {tuple(shape)}"
        )
    if any(int(p) < 1 for p in patch):
        raise ValueError(f"patch entries must be >= 1, got {tuple(patch)}")
    chunks = tuple(max(1, min(int(p), int(s))) for p, s in zip(patch, shape, strict=True))
    shards = []
    for want, size, inner in zip(shard, shape, chunks, strict=True):
        want = int(size) if int(want) <= 0 else min(int(want), int(size))
        shards.append(max(inner, math.ceil(max(want, 1) / inner) * inner))
    return chunks, tuple(shards)


# ---------------------------------------------------------------------- metadata


def _read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def _write_json(path: Path, doc: dict) -> None:
    """Write a JSON document atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)


def _bump_versions(node: Any) -> Any:
    """NGFF 0.4 metadata as 0.5: every ``"version"`` field set to ``"0.5"``."""
    if isinstance(node, dict):
        return {k: ("0.5" if k == "version" else _bump_versions(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_bump_versions(v) for v in node]
    return node


def _v3_attributes(attrs: dict, zarr_format: int) -> dict:
    """Attributes of a source node in the zarr v3 / NGFF 0.5 layout (NGFF keys under "ome")."""
    attrs = copy.deepcopy(dict(attrs))
    if zarr_format == 3:
        return attrs
    ome = {k: attrs.pop(k) for k in _NGFF_KEYS if k in attrs}
    if not ome:
        return attrs
    ome = _bump_versions(ome)
    ome["version"] = "0.5"
    return {"ome": ome, **attrs}


def _ngff(attrs: dict) -> dict:
    """The NGFF part of a node's attributes, in either layout."""
    return attrs.get("ome", attrs) if isinstance(attrs.get("ome"), dict) else attrs


def _axis_names(group_attrs: dict, ndim: int) -> list[str] | None:
    multiscales = _ngff(group_attrs).get("multiscales") or []
    if multiscales:
        names = [axis.get("name") for axis in multiscales[0].get("axes", [])]
        if len(names) == ndim and all(isinstance(n, str) for n in names):
            return names
    return None


def _compressors(array: Any) -> Any:
    """The source's compression as zarr v3 codecs ("auto" when it cannot be expressed)."""
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    if array.metadata.zarr_format == 3:
        return array.compressors or None
    out = []
    for codec in array.compressors:
        config = codec.get_config()
        name = config.get("id")
        if name == "blosc":
            shuffle = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle", -1: "shuffle"}
            out.append(
                BloscCodec(
                    cname=config.get("cname", "zstd"),
                    clevel=int(config.get("clevel", 5)),
                    shuffle=shuffle.get(int(config.get("shuffle", 1)), "shuffle"),
                    typesize=array.dtype.itemsize,
                    blocksize=int(config.get("blocksize", 0)),
                )
            )
        elif name == "zstd":
            out.append(ZstdCodec(level=int(config.get("level", 0))))
        elif name in ("gzip", "zlib"):
            out.append(GzipCodec(level=int(config.get("level", 5))))
        else:
            return "auto"
    return out or None


# ---------------------------------------------------------------------- walking the store


@dataclass
class _Node:
    rel: str  # path relative to the store root ("" for the root)
    kind: str  # "group" or "array"
    node: Any


def _children(group: Any) -> list[tuple[str, Any]]:
    return sorted(group.members(max_depth=0), key=lambda item: item[0])


def _is_image(group: Any) -> bool:
    return bool(_ngff(dict(group.attrs)).get("multiscales"))


def _stack_regions(shape: Sequence[int], shards: Sequence[int]) -> Iterator[tuple[slice, ...]]:
    grid = [range(0, size, step) for size, step in zip(shape, shards, strict=True)]
    for start in product(*grid):
        yield tuple(
            slice(s, min(s + step, size))
            for s, step, size in zip(start, shards, shape, strict=True)
        )


class _Copier:
    def __init__(
        self,
        src: Path,
        patch: Sequence[int],
        shard: Sequence[int],
        workers: int,
        bar: Any,
        result: RechunkResult,
    ) -> None:
        self.src = src
        self.patch = tuple(patch)
        self.shard = tuple(shard)
        self.workers = workers
        self.bar = bar
        self.result = result

    def layout(self, array: Any) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        """Chunks and shards of the copy of one source array."""
        if array.ndim == len(self.patch):
            return training_layout(array.shape, self.patch, self.shard)
        chunks = tuple(int(c) for c in (array.shards or array.chunks))
        return chunks, None

    def copy_group(self, group: Any, rel: str, out_dir: Path) -> None:
        """Copy a group's metadata and all its children into ``out_dir`` (which is created)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        attrs = _v3_attributes(dict(group.attrs), group.metadata.zarr_format)
        _write_json(
            out_dir / "zarr.json",
            {"zarr_format": 3, "node_type": "group", "attributes": attrs},
        )
        for name, child in _children(group):
            child_rel = f"{rel}/{name}" if rel else name
            if hasattr(child, "shape"):
                self.copy_array(child, child_rel, out_dir / name, dict(group.attrs))
            elif _is_image(child):
                self.copy_image(child, child_rel, out_dir / name)
            else:
                self.copy_group(child, child_rel, out_dir / name)

    def copy_image(self, group: Any, rel: str, out_dir: Path) -> None:
        """Copy one FOV (NGFF image group) atomically: temporary name, then rename."""
        if out_dir.exists():
            self.result.fovs_resumed.append(rel)
            self.bar.update(_group_nbytes(group))
            self._record_layouts(group, rel)
            return
        tmp = out_dir.with_name(f".{out_dir.name}.rechunk-tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.copy_group(group, rel, tmp)
        os.replace(tmp, out_dir)
        self.result.fovs_written.append(rel)

    def _record_layouts(self, group: Any, rel: str) -> None:
        for name, child in _children(group):
            child_rel = f"{rel}/{name}"
            if hasattr(child, "shape"):
                chunks, shards = self.layout(child)
                self.result.arrays[child_rel] = {
                    "chunks": list(chunks),
                    "shards": list(shards) if shards else None,
                }
            else:
                self._record_layouts(child, child_rel)

    def copy_array(self, array: Any, rel: str, out_dir: Path, group_attrs: dict) -> None:
        import zarr

        chunks, shards = self.layout(array)
        dimension_names = (
            array.metadata.dimension_names
            if array.metadata.zarr_format == 3
            else _axis_names(group_attrs, array.ndim)
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)  # a half-written array outside any FOV: start it again
        dst = zarr.create_array(
            str(out_dir),
            shape=array.shape,
            dtype=array.dtype,
            chunks=chunks,
            shards=shards,
            compressors=_compressors(array),
            fill_value=array.fill_value,
            dimension_names=dimension_names,
            attributes=_v3_attributes(dict(array.attrs), array.metadata.zarr_format),
            zarr_format=3,
        )
        self.result.arrays[rel] = {
            "chunks": list(chunks),
            "shards": list(shards) if shards else None,
        }
        # copy shard by shard (each shard file written once, whole)
        regions = list(_stack_regions(array.shape, shards or chunks))
        itemsize = array.dtype.itemsize

        def copy_region(region: tuple[slice, ...]) -> int:
            data = array[region]
            dst[region] = data
            return int(data.size) * itemsize

        if self.workers <= 1 or len(regions) == 1:
            done = map(copy_region, regions)
            for nbytes in done:
                self.result.bytes += nbytes
                self.bar.update(nbytes)
        else:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="rechunk") as pool:
                for nbytes in pool.map(copy_region, regions):
                    self.result.bytes += nbytes
                    self.bar.update(nbytes)


def _group_nbytes(group: Any) -> int:
    total = 0
    for _, child in group.members(max_depth=None):
        if hasattr(child, "shape"):
            total += int(math.prod(child.shape)) * child.dtype.itemsize
    return total


def _open_source(src: Path) -> Any:
    import zarr

    if not src.exists():
        raise FileNotFoundError(f"Source store not found: '{src}'")
    try:
        return zarr.open_group(str(src), mode="r")
    except Exception as err:
        raise ValueError(f"'{src}' is not a zarr group (an OME-Zarr plate or FOV): {err}") from err


def rechunk_store(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    patch: Sequence[int] = DEFAULT_PATCH,
    shard: Sequence[int] = DEFAULT_SHARD,
    workers: int = 2,
    progress: bool = True,
) -> RechunkResult:
    """Write a training-optimized (zarr v3 sharded) copy of an OME-Zarr plate or FOV.

    Parameters
    ----------
    src : str or PathLike
        OME-Zarr store (NGFF 0.4 / zarr v2 or NGFF 0.5 / zarr v3), left unchanged.
    dst : str or PathLike
        Store to create; must not exist. An interrupted call leaves
        ``.<name>.rechunk-partial`` next to it; calling again with the same arguments resumes.
    patch : sequence of int
        Inner chunk (T, C, Z, Y, X) of every 5-D array, clipped to its shape: about the
        box you train on, so each read decodes little more than itself.
    shard : sequence of int
        Shard (T, C, Z, Y, X), ``-1`` for a whole axis; rounded up to a multiple of ``patch``.
        The default writes one shard file per (t, c) stack.
    workers : int
        Shards copied in parallel (threads; the codecs release the GIL).
    progress : bool
        Show a progress bar (bytes copied).

    Returns
    -------
    RechunkResult

    Raises
    ------
    FileNotFoundError
        If ``src`` does not exist.
    FileExistsError
        If ``dst`` exists, or an interrupted copy made with other arguments is in the way.
    ValueError
        If ``src`` is not a zarr group or ``patch``/``shard`` are malformed.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    src_path, dst_path = Path(src).resolve(), Path(dst).resolve()
    patch, shard = tuple(int(p) for p in patch), tuple(int(s) for s in shard)
    if len(patch) != 5 or len(shard) != 5:
        raise ValueError(f"patch and shard must have 5 entries (T, C, Z, Y, X): {patch}, {shard}")
    training_layout((1,) * 5, patch, shard)  # validates the entries
    if dst_path.exists():
        raise FileExistsError(f"Refusing to overwrite existing store: '{dst_path}'")
    if dst_path == src_path or src_path in dst_path.parents:
        raise ValueError(f"Destination '{dst_path}' must lie outside the source '{src_path}'")
    root = _open_source(src_path)

    partial = dst_path.with_name(f".{dst_path.name}.rechunk-partial")
    manifest = {"source": str(src_path), "patch": list(patch), "shard": list(shard)}
    if partial.exists():
        try:
            previous = _read_json(partial / _MANIFEST)
        except (OSError, ValueError):
            previous = None
        if previous != manifest:
            raise FileExistsError(
                f"'{partial}' holds an interrupted copy made with other arguments ({previous}); "
                f"remove it or rerun with those arguments (now: {manifest})"
            )
    else:
        partial.mkdir(parents=True)
        _write_json(partial / _MANIFEST, manifest)

    result = RechunkResult(path=dst_path)
    total = _group_nbytes(root)
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"rechunk {src_path.name}",
        disable=not progress,
    ) as bar:
        copier = _Copier(src_path, patch, shard, max(1, int(workers)), bar, result)
        # a single-FOV store is one unit: the final rename below makes it atomic
        copier.copy_group(root, "", partial)
        if _is_image(root):
            result.fovs_written.append("")
    (partial / _MANIFEST).unlink()
    os.replace(partial, dst_path)
    result.seconds = time.perf_counter() - start
    return result


# ---------------------------------------------------------------------- command


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 5 comma-separated integers, got {text!r}"
        ) from None
    if len(values) != 5:
        raise argparse.ArgumentTypeError(f"expected 5 integers (T,C,Z,Y,X), got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``viscy rechunk``."""
    parser = argparse.ArgumentParser(
        prog="viscy rechunk",
        description="Write a training-optimized copy of an OME-Zarr plate: zarr v3 sharded, "
        "small inner chunks sized from the training patch, one shard per (t, c) stack; all "
        "metadata (NGFF, normalization statistics) kept. Rerun to resume an interrupted copy.",
    )
    parser.add_argument("src", type=Path, help="source OME-Zarr plate or FOV (left unchanged)")
    parser.add_argument("dst", type=Path, help="copy to create (must not exist)")
    parser.add_argument(
        "--patch",
        type=_parse_shape,
        default=DEFAULT_PATCH,
        help="inner chunk T,C,Z,Y,X, about the box you train on (default: 1,1,1,128,128)",
    )
    parser.add_argument(
        "--shard",
        type=_parse_shape,
        default=DEFAULT_SHARD,
        help="shard T,C,Z,Y,X, -1 = whole axis (default: 1,1,-1,-1,-1, one per (t, c) stack)",
    )
    parser.add_argument("--workers", type=int, default=2, help="shards copied in parallel")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return parser


def rechunk_main(argv: Sequence[str] | None = None) -> int:
    """Run ``viscy rechunk`` with command-line arguments ``argv``."""
    ns = build_parser().parse_args(argv)
    try:
        result = rechunk_store(
            ns.src,
            ns.dst,
            patch=ns.patch,
            shard=ns.shard,
            workers=ns.workers,
            progress=not ns.no_progress,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"viscy rechunk: error: {err}", file=sys.stderr)
        return 1
    resumed = (
        f", {len(result.fovs_resumed)} kept from an earlier run" if result.fovs_resumed else ""
    )
    print(
        f"Wrote {result.path}: {len(result.fovs_written)} FOV(s){resumed}, "
        f"{result.bytes / 1024**2:.1f} MiB in {result.seconds:.1f} s"
    )
    return 0
