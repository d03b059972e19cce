"""Partial blosc decoding: the same arrays as a full decode, and a clean fallback otherwise."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path

import numcodecs.blosc as nblosc
import numpy as np
import pytest
from torch.utils.data import Dataset

from viscy_data import _blosc_partial as bp
from viscy_data._reader import PatchBox, PatchReader, PatchReadError
from viscy_data.synthetic import write_synthetic_plate

NEEDS_TENSORSTORE = pytest.mark.skipif(
    importlib.util.find_spec("tensorstore") is None, reason="needs viscy-data[triplet]"
)
pytestmark = pytest.mark.skipif(bp.getitem_function() is None, reason="no blosc_getitem")


def _random_ranges(rng, nbytes: int, n: int, itemsize: int) -> np.ndarray:
    starts = rng.integers(0, nbytes // itemsize, n) * itemsize
    lengths = rng.integers(1, nbytes // (4 * itemsize), n) * itemsize
    return np.stack([starts, np.minimum(starts + lengths, nbytes)], axis=1)


@pytest.mark.parametrize(
    ("cname", "shuffle", "blocksize", "dtype"),
    [
        ("zstd", 2, 0, "<u2"),  # iohub's default: bitshuffle, no split
        ("zstd", 2, 4096, "<u2"),
        ("lz4", 1, 4096, "<u2"),  # byte shuffle: blocks split in typesize streams
        ("blosclz", 0, 3000, "<f4"),  # blocksize not dividing the chunk: a leftover block
        ("lz4", 1, 0, "<u2"),  # incompressible: stored uncompressed (memcpyed)
        ("zstd", 1, 1024, "|u1"),
    ],
)
def test_decode_blocks_matches_full_decode(tmp_path, cname, shuffle, blocksize, dtype):
    rng = np.random.default_rng(0)
    if cname == "lz4" and blocksize == 0:
        data = rng.integers(0, 2**16, (6, 50, 70)).astype(dtype)
    else:
        data = (rng.normal(100, 5, (6, 50, 70))).astype(dtype)
    raw = data.tobytes()
    chunk = nblosc.compress(raw, cname.encode(), 5, shuffle, blocksize=blocksize)
    if cname == "lz4" and blocksize == 0:
        assert chunk[2] & 0x02  # the memcpyed case is really exercised
    path = tmp_path / "0"
    path.write_bytes(chunk)
    expected = np.frombuffer(raw, dtype=np.uint8)
    for _ in range(5):
        ranges = _random_ranges(rng, len(raw), int(rng.integers(1, 6)), data.itemsize)
        for blocks in (None, bp.ChunkBlocks(len(raw))):
            out = bp.decode_blocks(str(path), len(raw), ranges, blocks)
            for a, b in ranges.tolist():
                np.testing.assert_array_equal(out[a:b], expected[a:b])
    assert bp.decode_blocks(str(tmp_path / "missing"), len(raw), ranges) is None


def test_block_cache_decodes_each_block_once(tmp_path, monkeypatch):
    raw = np.arange(64 * 1024, dtype="<u2").tobytes()
    path = tmp_path / "0"
    path.write_bytes(nblosc.compress(raw, b"zstd", 1, 2, blocksize=8192))
    decoded: list[int] = []
    original = bp._decode_runs

    def counting(*args):
        decoded.append(sum(b - a for a, b in args[7]))
        return original(*args)

    monkeypatch.setattr(bp, "_decode_runs", counting)
    cache = bp.BlockCache(len(raw))
    blocks = cache.blocks(str(path), len(raw))
    bp.decode_blocks(str(path), len(raw), np.array([[0, 20000]]), blocks)
    cache.account(str(path), blocks)
    assert decoded == [3] and cache.nbytes == 3 * 8192
    out = bp.decode_blocks(str(path), len(raw), np.array([[10000, 40000]]), blocks)
    assert decoded == [3, 2]  # blocks 3 and 4 only
    assert bp.decode_blocks(str(path), len(raw), np.array([[0, 40000]]), blocks) is out
    assert len(decoded) == 2  # everything was there: no file access, no decode
    np.testing.assert_array_equal(out[:40000], np.frombuffer(raw, np.uint8)[:40000])
    # the cache keeps at most its capacity (least recently used chunks out)
    small = bp.BlockCache(len(raw))
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(path.read_bytes())
        entry = small.blocks(str(tmp_path / name), len(raw))
        bp.decode_blocks(str(tmp_path / name), len(raw), np.array([[0, len(raw)]]), entry)
        small.account(str(tmp_path / name), entry)
    assert small.nbytes == len(raw)
    assert small.blocks(str(tmp_path / "a"), len(raw)).blocksize == 0  # evicted: fresh
    assert bp.BlockCache(0).blocks(str(path), len(raw)) is None


@pytest.mark.parametrize(
    "damage",
    ["truncated", "offset_outside", "stream_size_outside", "wrong_nbytes", "not_blosc"],
)
def test_damaged_chunks_are_refused(tmp_path, damage):
    raw = np.arange(32 * 1024, dtype="<u2").tobytes()
    chunk = bytearray(nblosc.compress(raw, b"zstd", 1, 2, blocksize=4096))
    if damage == "truncated":
        chunk = chunk[:-100]
    elif damage == "offset_outside":
        chunk[16:20] = (len(chunk) + 10).to_bytes(4, "little")
    elif damage == "stream_size_outside":
        start = int.from_bytes(chunk[16:20], "little")
        chunk[start : start + 4] = (len(chunk)).to_bytes(4, "little")
    elif damage == "wrong_nbytes":
        chunk[4:8] = (len(raw) * 2).to_bytes(4, "little")
    else:
        chunk = bytearray(b"\x02\x01garbage" * 16)
    path = tmp_path / "0"
    path.write_bytes(bytes(chunk))
    with pytest.raises(bp.Unsupported):
        bp.decode_blocks(str(path), len(raw), np.array([[0, len(raw)]]))


def test_blosc_codec_recognises_only_plain_blosc():
    v3 = {
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 1, 4, 8, 8]}},
        "codecs": [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "blosc", "configuration": {"cname": "zstd"}},
        ],
        "fill_value": 0,
    }
    codec = bp.blosc_codec(v3, 3)
    assert codec == bp.BloscCodec((1, 1, 4, 8, 8), np.dtype("<u2"), 0)
    assert codec.nbytes == 4 * 8 * 8 * 2
    zstd = {**v3, "codecs": [v3["codecs"][0], {"name": "zstd", "configuration": {}}]}
    sharded = {**v3, "codecs": [{"name": "sharding_indexed", "configuration": {}}]}
    big = {**v3, "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}, v3["codecs"][1]]}
    for meta in (zstd, sharded, big):
        assert bp.blosc_codec(meta, 3) is None
    v2 = {"dtype": "<u2", "chunks": [1, 1, 4, 8, 8], "order": "C", "filters": None,
          "compressor": {"id": "blosc"}, "fill_value": None}  # fmt: skip
    assert bp.blosc_codec(v2, 2) == bp.BloscCodec((1, 1, 4, 8, 8), np.dtype("<u2"), None)
    assert bp.blosc_codec({**v2, "filters": [{"id": "delta"}]}, 2) is None
    assert bp.blosc_codec({**v2, "compressor": {"id": "zstd"}}, 2) is None
    assert bp.blosc_codec({**v2, "order": "F"}, 2) is None
    assert bp.blosc_codec({**v2, "dtype": ">u2"}, 2) is None


def test_getitem_missing_symbol_gives_none():
    import ctypes.util

    libc = ctypes.util.find_library("c")
    assert bp.getitem_function(libc) is None
    assert bp.getitem_function("/no/such/library.so") is None
    assert bp.getitem_function() is not None


# ---------------------------------------------------------------- through PatchReader


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def chunked_plate(request, tmp_path_factory):
    """A plate whose chunks (2 x 24 x 40) do not divide its 5 x 50 x 70 FOVs: boxes cross
    chunks and touch partial edge chunks; one chunk file is deleted (fill value)."""
    root = tmp_path_factory.mktemp(f"partial_v{request.param}")
    plate = write_synthetic_plate(
        root / "plate.zarr",
        shape=(2, 2, 5, 50, 70),
        wells=(("A", "1"),),
        fovs_per_well=2,
        chunks=(1, 1, 2, 24, 40),
        version=request.param,
        seed=3,
    )
    array = Path(plate.path) / "A" / "1" / "0" / "0"
    missing = array / ("c/1/0/0/1/0" if request.param == "0.5" else "1/0/0/1/0")
    assert missing.is_file()
    missing.unlink()
    return plate


def _boxes(reader: PatchReader, n: int, size=(3, 20, 30), seed=0) -> list[PatchBox]:
    rng = np.random.default_rng(seed)
    boxes = []
    for i in range(n):
        pos = reader.position_names[i % len(reader.position_names)]
        t_size, _, z_size, y_size, x_size = reader.shape(pos)
        z0 = int(rng.integers(0, z_size - size[0] + 1))
        if i % 3 == 0:  # at the far edges
            y0, x0 = y_size - size[1], x_size - size[2]
        else:
            y0 = int(rng.integers(0, y_size - size[1] + 1))
            x0 = int(rng.integers(0, x_size - size[2] + 1))
        channels = (1, 0) if i % 2 else (0, 1)
        box = (pos, int(rng.integers(t_size)), channels, (z0, z0 + size[0]))
        boxes.append(PatchBox(*box, (y0, y0 + size[1]), (x0, x0 + size[2])))
    boxes.append(PatchBox("A/1/0", 1, (0, 1), (0, 3), (20, 40), (0, 30)))  # the missing chunk
    boxes.append(boxes[1])  # repeated
    return boxes


@pytest.mark.parametrize("backend", [pytest.param("tensorstore", marks=NEEDS_TENSORSTORE), "zarr"])
def test_partial_reads_equal_library_reads(chunked_plate, backend):
    partial = PatchReader(chunked_plate.path, backend=backend)
    assert all(partial._info(p).blosc is not None for p in partial.position_names)
    library = PatchReader(chunked_plate.path, backend=backend)
    library._partial_decode = "never"
    boxes = _boxes(partial, 12)
    out = np.empty((len(boxes), *boxes[0].size), dtype=np.uint16)
    rest, _ = partial._read_partial(boxes, out, list(range(len(boxes))))
    assert rest == []  # every box was served by partial decoding
    expected = library.read_patches(boxes)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(partial.read_patches(boxes), expected)
    assert (expected[-2, 0, :2, 4:, :] == 0).all()  # the deleted chunk reads as fill value
    assert (expected[-2, 0, 2:] != 0).any() and (expected[-2, 1] != 0).any()
    # cast into another dtype, as the DataModules' float buffers do; second read from cache
    as_float = partial.read_patches(boxes, out=np.empty(out.shape, dtype=np.float32))
    np.testing.assert_array_equal(as_float, expected.astype(np.float32))


def test_partial_reads_from_threads(chunked_plate):
    reader = PatchReader(chunked_plate.path, cache_bytes=64 * 1024)  # evicts while reading
    library = PatchReader(chunked_plate.path)
    library._partial_decode = "never"
    batches = [_boxes(reader, 8, seed=s) for s in range(6)]
    expected = [library.read_patches(b) for b in batches]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                results[i] = reader.read_patches(batches[i])
                np.testing.assert_array_equal(results[i], expected[i])
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]


def test_other_codecs_and_missing_getitem_fall_back(sharded_plate, hcs_plate_v5, monkeypatch):
    # sharded arrays are not plain blosc: read by the array library, same values
    reader = PatchReader(sharded_plate.path)
    assert all(reader._info(p).blosc is None for p in reader.position_names)
    box = PatchBox(reader.position_names[0], 0, (0, 1), (0, 4), (10, 50), (5, 60))
    out = np.empty((1, *box.size), dtype=np.uint16)
    assert reader._read_partial([box], out, [0])[0] == [box]
    np.testing.assert_array_equal(reader.read_patch(box), _zarr_truth(sharded_plate, box))
    # without blosc_getitem everything goes to the array library
    import viscy_data._reader as reader_module

    monkeypatch.setattr(reader_module, "getitem_function", lambda: None)
    reader = PatchReader(hcs_plate_v5.path)
    assert reader._info(box.position).blosc is not None
    assert reader._read_partial([box], out, [0])[0] == [box]
    np.testing.assert_array_equal(reader.read_patch(box), _zarr_truth(hcs_plate_v5, box))


def _zarr_truth(plate, box: PatchBox) -> np.ndarray:
    import zarr

    array = zarr.open_array(str(Path(plate.path) / box.position / "0"), mode="r")
    full = np.asarray(array[box.t])
    return full[list(box.channels), slice(*box.z), slice(*box.y), slice(*box.x)]


def test_damaged_chunk_still_names_the_file(tmp_path):
    plate = write_synthetic_plate(tmp_path / "p.zarr", shape=(1, 2, 4, 64, 64), version="0.5")
    array = Path(plate.path) / "A" / "1" / "0" / "0"
    meta = json.loads((array / "zarr.json").read_text())
    assert bp.blosc_codec(meta, 3) is not None
    chunk = array / "c" / "0" / "1" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-50])  # truncated: refused, then the library fails
    box = PatchBox("A/1/0", 0, (0, 1), (0, 2), (0, 16), (0, 16))
    with pytest.raises(PatchReadError, match=r"FOV 'A/1/0' t=0 channel\(s\).*c/0/1/0/0/0"):
        PatchReader(plate.path).read_patch(box)


def _read_in_child(reader: PatchReader, boxes: list[PatchBox]) -> np.ndarray:
    return reader.read_patches(boxes)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_partial_reads_in_a_forked_child_after_the_parent_read(chunked_plate):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    reader = PatchReader(chunked_plate.path)
    boxes = _boxes(reader, 6, seed=4)
    expected = reader.read_patches(boxes)  # the parent has read (and cached blocks)
    with ProcessPoolExecutor(1, mp_context=mp.get_context("fork")) as pool:
        got = pool.submit(_read_in_child, reader, boxes).result(timeout=120)
    np.testing.assert_array_equal(got, expected)


class _ThreadsSeen(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        from viscy_data._reader import reader_threads

        return reader_threads()


def test_reader_threads_are_shared_out_among_loader_workers():
    # two workers decode in parallel already: each gets half the cores (at least 1), so the
    # workers' thread pools never oversubscribe the cores the process may use
    import multiprocessing
    import os

    from torch.utils.data import DataLoader

    from viscy_data._reader import reader_threads

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert reader_threads() == max(1, min(8, cores))
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork")
    loader = DataLoader(
        _ThreadsSeen(), batch_size=None, num_workers=2, multiprocessing_context="fork"
    )
    assert set(loader) == {max(1, min(8, cores // 2))}
