"""Tests of the patch-reading layer against plates written with iohub."""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import zarr

from viscy_data._reader import PatchBox, PatchReader, _tensorstore_context

NEEDS_TENSORSTORE = pytest.mark.skipif(
    importlib.util.find_spec("tensorstore") is None, reason="needs viscy-data[triplet]"
)


def _truth(plate, box: PatchBox) -> np.ndarray:
    """Read a box with plain zarr-python and numpy indexing (independent of the reader)."""
    array = zarr.open_array(str(plate.path / box.position / "0"), mode="r")
    full = np.asarray(array[box.t])
    return full[list(box.channels), slice(*box.z), slice(*box.y), slice(*box.x)]


def _random_boxes(reader: PatchReader, n: int, size=(3, 20, 24), seed=0) -> list[PatchBox]:
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(n):
        pos = reader.position_names[rng.integers(len(reader.position_names))]
        t_size, c_size, z_size, y_size, x_size = reader.shape(pos)
        z0 = int(rng.integers(0, z_size - size[0] + 1))
        y0 = int(rng.integers(0, y_size - size[1] + 1))
        x0 = int(rng.integers(0, x_size - size[2] + 1))
        channels = (1, 0) if rng.random() < 0.5 else (0, 1)
        boxes.append(
            PatchBox(
                pos,
                int(rng.integers(t_size)),
                channels,
                (z0, z0 + size[0]),
                (y0, y0 + size[1]),
                (x0, x0 + size[2]),
            )
        )
    return boxes


@pytest.mark.parametrize("backend", [pytest.param("tensorstore", marks=NEEDS_TENSORSTORE), "zarr"])
def test_read_patches_match_zarr(hcs_plate, backend):
    reader = PatchReader(hcs_plate.path, backend=backend)
    assert reader.backend == backend
    assert reader.channel_names == ["Phase3D", "GFP"]
    assert reader.position_names == ["A/1/0", "A/1/1", "B/1/0", "B/1/1"]
    assert reader.shape("A/1/0") == (3, 2, 8, 128, 128)
    assert reader.dtype("B/1/1") == np.uint16
    boxes = _random_boxes(reader, 12)
    patches = reader.read_patches(boxes)
    assert patches.shape == (12, 2, 3, 20, 24)
    assert patches.dtype == np.uint16
    for box, patch in zip(boxes, patches, strict=True):
        np.testing.assert_array_equal(patch, _truth(hcs_plate, box))
    single = reader.read_patch(boxes[3])
    np.testing.assert_array_equal(single, patches[3])


@pytest.mark.parametrize("backend", [pytest.param("tensorstore", marks=NEEDS_TENSORSTORE), "zarr"])
def test_repeated_boxes_read_once_into_final_order(hcs_plate_v5, backend, monkeypatch):
    reader = PatchReader(hcs_plate_v5.path, backend=backend)
    distinct = _random_boxes(reader, 5, seed=1)
    order = [3, 0, 3, 1, 4, 0, 2, 3]
    boxes = [distinct[i] for i in order]
    read_rows = []
    inner = reader._read_rows_into

    def spying(boxes_read, out, rows):
        read_rows.append(list(range(len(boxes_read))) if rows is None else list(rows))
        return inner(boxes_read, out, rows)

    monkeypatch.setattr(reader, "_read_rows_into", spying)
    out = np.full((len(boxes), 2, 3, 20, 24), 7, dtype=np.uint16)
    patches = reader.read_patches(boxes, out=out)
    assert patches is out
    # each distinct box read once, into the first row that asks for it
    assert read_rows == [[0, 1, 3, 4, 6]]
    for box, patch in zip(boxes, patches, strict=True):
        np.testing.assert_array_equal(patch, _truth(hcs_plate_v5, box))


@pytest.mark.parametrize("backend", [pytest.param("tensorstore", marks=NEEDS_TENSORSTORE), "zarr"])
def test_sharded_plate(sharded_plate, backend):
    reader = PatchReader(sharded_plate.path, backend=backend, cache_bytes=0)
    boxes = _random_boxes(reader, 6, size=(5, 40, 70), seed=1)
    patches = reader.read_patches(boxes)
    for box, patch in zip(boxes, patches, strict=True):
        np.testing.assert_array_equal(patch, _truth(sharded_plate, box))


def test_single_position_store(hcs_plate_v5):
    reader = PatchReader(hcs_plate_v5.path / "A" / "1" / "0")
    assert reader.position_names == [""]
    box = PatchBox("", 1, (1,), (0, 8), (0, 128), (0, 128))
    full = np.asarray(zarr.open_array(str(hcs_plate_v5.path / "A/1/0/0"), mode="r")[1, 1:2])
    np.testing.assert_array_equal(reader.read_patch(box), full)


def test_other_array_key(hcs_plate_v5):
    reader = PatchReader(hcs_plate_v5.path, array_key="fg_mask")
    assert reader.dtype("A/1/0") == np.uint8
    patch = reader.read_patch(PatchBox("A/1/0", 0, (0,), (0, 1), (0, 4), (0, 4)))
    assert set(np.unique(patch)) <= {0, 1}


def test_out_of_bounds_names_position_and_axis(hcs_plate_v5):
    reader = PatchReader(hcs_plate_v5.path)
    ok = dict(position="A/1/1", t=0, channels=(0,), z=(0, 2), y=(0, 8), x=(0, 8))
    for field, value, axis in [
        ("t", 3, "T"),
        ("channels", (2,), "C"),
        ("z", (7, 9), "Z"),
        ("y", (-1, 7), "Y"),
        ("x", (125, 133), "X"),
    ]:
        box = PatchBox(**{**ok, field: value})
        with pytest.raises(ValueError, match=rf"axis {axis}.*A/1/1"):
            reader.read_patches([box])
    with pytest.raises(KeyError, match="Z/9/9"):
        reader.read_patch(PatchBox(**{**ok, "position": "Z/9/9"}))


def test_boxes_of_different_sizes_rejected(hcs_plate_v5):
    reader = PatchReader(hcs_plate_v5.path)
    a = PatchBox("A/1/0", 0, (0,), (0, 2), (0, 8), (0, 8))
    b = PatchBox("A/1/0", 0, (0,), (0, 2), (0, 8), (0, 9))
    with pytest.raises(ValueError, match="same size"):
        reader.read_patches([a, b])
    with pytest.raises(ValueError, match="at least one"):
        reader.read_patches([])


def test_not_a_plate(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        PatchReader(tmp_path / "missing.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(ValueError, match="empty.zarr"):
        PatchReader(tmp_path / "empty.zarr")
    with pytest.raises(ValueError, match="backend"):
        PatchReader(tmp_path, backend="h5py")


def test_pickle_drops_handles_and_reopens(hcs_plate_v5):
    reader = PatchReader(hcs_plate_v5.path, cache_bytes=1 << 20)
    boxes = _random_boxes(reader, 4)
    first = reader.read_patches(boxes)
    assert reader._arrays  # handles are open now
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._arrays == {}
    assert clone.cache_bytes == 1 << 20
    np.testing.assert_array_equal(clone.read_patches(boxes), first)
    reader.close()
    assert reader._arrays == {}
    np.testing.assert_array_equal(reader.read_patches(boxes), first)


@NEEDS_TENSORSTORE
def test_cache_context_shared_per_process():
    assert _tensorstore_context(1 << 20) is _tensorstore_context(1 << 20)
    assert _tensorstore_context(0) is not _tensorstore_context(1 << 20)


def test_reader_in_spawned_process(hcs_plate_v5):
    reader = PatchReader(hcs_plate_v5.path)
    boxes = _random_boxes(reader, 3, seed=5)
    expected = reader.read_patches(boxes)  # open handles must not travel to the child
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        # a bound method pickles the reader itself (test functions are not importable there)
        got = pool.submit(reader.read_patches, boxes).result(timeout=120)
    np.testing.assert_array_equal(got, expected)
