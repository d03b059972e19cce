"""``viscy rechunk``: a sharded zarr v3 copy that reads back identical and trains the same."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr
from iohub.ngff import open_ome_zarr

from viscy_data.synthetic import write_synthetic_plate
from viscy_utils import rechunk as rechunk_module
from viscy_utils.cli import main as viscy_main
from viscy_utils.rechunk import rechunk_store, training_layout

SHAPE = (3, 2, 8, 96, 96)
CHANNELS = ("Phase3D", "GFP")
PATCH = (1, 1, 1, 32, 32)


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def source(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"rechunk_src_{request.param}")
    return write_synthetic_plate(
        root / "plate.zarr",
        shape=SHAPE,
        channel_names=CHANNELS,
        version=request.param,
        seed=3,
        tracks_path=root / "tracks",
        cells_per_fov=4,
        foreground_mask=True,
    )


@pytest.fixture(scope="module")
def copy(source, tmp_path_factory):
    dst = tmp_path_factory.mktemp("rechunk_dst") / "rechunked.zarr"
    result = rechunk_store(source.path, dst, patch=PATCH, progress=False)
    return dst, result


def test_training_layout_clips_and_rounds_shards():
    assert training_layout((8, 2, 8, 1024, 1024)) == (
        (1, 1, 1, 128, 128),
        (1, 1, 8, 1024, 1024),
    )
    # inner chunks clipped to the array; shards a multiple of the inner chunk
    assert training_layout((4, 2, 3, 100, 300), (1, 1, 2, 256, 128)) == (
        (1, 1, 2, 100, 128),
        (1, 1, 4, 100, 384),
    )
    with pytest.raises(ValueError, match="patch entries must be >= 1"):
        training_layout((1, 1, 1, 8, 8), (1, 1, 0, 8, 8))


def test_reads_back_identical_with_iohub_tensorstore_and_zarr(source, copy):
    ts = pytest.importorskip("tensorstore")
    dst, result = copy
    assert sorted(result.fovs_written) == sorted(source.fov_names)
    assert not result.fovs_resumed
    assert not any(p.name.endswith("rechunk-partial") for p in dst.parent.iterdir())
    with open_ome_zarr(source.path, mode="r") as a, open_ome_zarr(dst, mode="r") as b:
        assert b.version == "0.5"
        assert b.channel_names == a.channel_names
        assert b.zattrs["normalization"] == a.zattrs["normalization"]
        assert [n for n, _ in b.positions()] == [n for n, _ in a.positions()]
        for name, pos in a.positions():
            copy_pos = b[name]
            assert copy_pos.zattrs["normalization"] == pos.zattrs["normalization"]
            assert copy_pos.scale == pos.scale
            assert sorted(copy_pos.array_keys()) == ["0", "fg_mask"]
            for key in ("0", "fg_mask"):
                original = np.asarray(pos[key][:])
                np.testing.assert_array_equal(np.asarray(copy_pos[key][:]), original)
                path = str(dst / name / key)
                array = zarr.open_array(path, mode="r")
                assert array.chunks == PATCH
                assert array.shards == (1, 1, 8, 96, 96)
                assert array.dtype == original.dtype
                np.testing.assert_array_equal(array[:], original)
                spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
                ts_array = ts.open(spec, read=True).result()
                np.testing.assert_array_equal(ts_array.read().result(), original)
    # one shard file per (t, c) stack
    shard_files = [p for p in (dst / "A/1/0/0").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert len(shard_files) == SHAPE[0] * SHAPE[1]


def test_datamodules_read_the_copy_unchanged(source, copy):
    pytest.importorskip("tensorstore")
    from viscy_data import HCSDataModule, TripletDataModule

    dst, _ = copy

    def triplet_batch(path):
        dm = TripletDataModule(
            data_path=str(path),
            tracks_path=str(source.tracks_path),
            source_channel=list(CHANNELS),
            z_range=(2, 6),
            initial_yx_patch_size=(40, 40),
            final_yx_patch_size=(32, 32),
            batch_size=4,
            num_workers=0,
            seed=5,
        )
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))

    def hcs_batch(path):
        dm = HCSDataModule(
            data_path=str(path),
            source_channel="Phase3D",
            target_channel="GFP",
            z_window_size=3,
            batch_size=4,
            num_workers=0,
            yx_patch_size=(32, 32),
            pin_memory=False,
            seed=5,
        )
        dm.setup("fit")
        torch.manual_seed(0)
        return next(iter(dm.train_dataloader()))

    for make in (triplet_batch, hcs_batch):
        a, b = make(source.path), make(dst)
        tensors = [k for k, v in a.items() if isinstance(v, torch.Tensor)]
        assert tensors
        for key in tensors:
            assert torch.equal(a[key], b[key]), (make.__name__, key)


def test_resumes_after_an_interruption(source, tmp_path, monkeypatch):
    dst = tmp_path / "resumed.zarr"
    calls = {"images": 0}

    def failing_copy_image(self, group, rel, out_dir):
        calls["images"] += 1
        if calls["images"] == 3:
            # leave a half-written FOV behind, as a killed process would
            (out_dir.with_name(f".{out_dir.name}.rechunk-tmp") / "junk").mkdir(parents=True)
            raise KeyboardInterrupt
        return original_image(self, group, rel, out_dir)

    original_image = rechunk_module._Copier.copy_image
    monkeypatch.setattr(rechunk_module._Copier, "copy_image", failing_copy_image)
    with pytest.raises(KeyboardInterrupt):
        rechunk_store(source.path, dst, patch=PATCH, progress=False)
    assert not dst.exists()
    partial = tmp_path / ".resumed.zarr.rechunk-partial"
    assert json.loads((partial / "rechunk.json").read_text())["patch"] == list(PATCH)

    # other arguments would mix two layouts: refused
    monkeypatch.setattr(rechunk_module._Copier, "copy_image", original_image)
    with pytest.raises(FileExistsError, match="interrupted copy made with other arguments"):
        rechunk_store(source.path, dst, patch=(1, 1, 2, 32, 32), progress=False)

    result = rechunk_store(source.path, dst, patch=PATCH, progress=False)
    assert len(result.fovs_resumed) == 2 and len(result.fovs_written) == 2
    assert not partial.exists()
    assert not list(dst.rglob("*.rechunk-tmp"))
    with open_ome_zarr(source.path, mode="r") as a, open_ome_zarr(dst, mode="r") as b:
        for name, pos in a.positions():
            np.testing.assert_array_equal(b[name]["0"][:], pos["0"][:])


def test_command_line_and_errors(source, tmp_path, capsys):
    dst = tmp_path / "cli.zarr"
    assert viscy_main(["rechunk", str(source.path), str(dst), "--patch", "1,1,2,48,48"]) == 0
    assert "4 FOV(s)" in capsys.readouterr().out
    assert zarr.open_array(str(dst / "B/1/1/0"), mode="r").chunks == (1, 1, 2, 48, 48)
    # never overwrites
    assert viscy_main(["rechunk", str(source.path), str(dst), "--no_progress"]) == 1
    assert "Refusing to overwrite" in capsys.readouterr().err
    # a missing source is named
    assert viscy_main(["rechunk", str(tmp_path / "nope.zarr"), str(tmp_path / "x.zarr")]) == 1
    assert "nope.zarr" in capsys.readouterr().err
    # malformed patch: argparse usage error
    argv = ["rechunk", str(source.path), str(tmp_path / "y.zarr"), "--patch", "1,2"]
    assert viscy_main(argv) == 2
    assert "rechunk" in capsys.readouterr().err
