"""HCSDataModule, SlidingWindowDataset and MaskTestDataset on synthetic plates."""

from __future__ import annotations

import importlib.util

import lightning as L
import numpy as np
import pytest
import torch
import zarr
from monai.transforms import RandAffined, RandSpatialCropd
from torch import nn

from viscy_data import HCSDataModule, HCSStackIndex, MaskTestDataset
from viscy_data.hcs import required_yx
from viscy_transforms import NormalizeSampled

SRC, TGT = "Phase3D", "GFP"


def _dm(plate, **kwargs) -> HCSDataModule:
    options = {
        "data_path": str(plate.path),
        "source_channel": SRC,
        "target_channel": TGT,
        "z_window_size": 3,
        "batch_size": 4,
        "num_workers": 0,
        "yx_patch_size": (32, 32),
        "pin_memory": False,
    }
    options.update(kwargs)
    return HCSDataModule(**options)


def _raw(plate, fov: str, t: int, c: int, z: tuple[int, int], y, x) -> np.ndarray:
    array = zarr.open_array(str(plate.path / fov / "0"), mode="r")
    return np.asarray(array[t, c, z[0] : z[1], y[0] : y[1], x[0] : x[1]], dtype=np.float32)


def _count_reads(dataset):
    """Wrap the dataset reader to record the boxes each batched call reads."""
    calls = []
    original = dataset.reader.read_patches

    def counting(boxes, **kwargs):
        calls.append(list(boxes))
        return original(boxes, **kwargs)

    dataset.reader.read_patches = counting
    return calls


def test_fit_split_batches_and_crop_on_read(hcs_plate):
    norm = NormalizeSampled([SRC, TGT], level="fov_statistics")
    dm = _dm(hcs_plate, normalizations=[norm])
    dm.setup("fit")
    assert dm.train_fov_names
    assert dm.val_fov_names
    assert set(dm.train_fov_names).isdisjoint(dm.val_fov_names)
    assert sorted(dm.train_fov_names + dm.val_fov_names) == hcs_plate.fov_names
    # T=3, Z=8, window 3 -> 6 windows per t
    assert len(dm.train_dataset) == len(dm.train_fov_names) * 3 * 6
    calls = _count_reads(dm.train_dataset)
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"].shape == (4, 1, 3, 32, 32)
    assert batch["target"].shape == (4, 1, 3, 32, 32)
    assert batch["source"].dtype == torch.float32
    assert isinstance(batch["index"], HCSStackIndex)
    assert len(batch["index"].image) == 4
    assert set(batch["index"].image) <= set(dm.train_fov_names)
    # one batched read per batch, of patch-sized boxes (no augmentations -> no margin)
    assert len(calls) == 1
    assert len(calls[0]) == 4
    assert {(b.y[1] - b.y[0], b.x[1] - b.x[0]) for b in calls[0]} == {(32, 32)}
    # validation: FOV center, normalized with the FOV's statistics
    val = next(iter(dm.val_dataloader()))
    fov, t, z = val["index"].image[1], int(val["index"].time[1]), int(val["index"].z[1])
    stats = val["norm_meta"][TGT]["fov_statistics"]
    raw = _raw(hcs_plate, fov, t, 1, (z, z + 3), (48, 80), (48, 80))
    expected = (raw - stats["mean"][1].item()) / (stats["std"][1].item() + 1e-8)
    np.testing.assert_allclose(val["target"][1, 0].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_random_windows_cover_the_fov(hcs_plate_v5):
    dm = _dm(hcs_plate_v5)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"].dtype == torch.uint16  # no CPU transforms: store dtype
    on_device = dm.on_after_batch_transfer(batch, 0)
    assert on_device["source"].dtype == torch.float32
    torch.testing.assert_close(on_device["target"], batch["target"].float())
    calls = _count_reads(dm.train_dataset)
    dm.train_dataset.__getitems__(list(range(24)))
    starts = {(b.y[0], b.x[0]) for b in calls[0]}
    assert len(starts) > 10  # randomly placed, not the same corner every time
    assert all(0 <= y <= 96 and 0 <= x <= 96 for y, x in starts)


def test_required_margin_for_augmentations():
    keys = [SRC, TGT]
    assert required_yx(None, (32, 32)) == (32, 32)
    crop = RandSpatialCropd(keys, roi_size=(-1, 48, 40))
    assert required_yx([crop], (32, 32)) == (48, 40)
    affine = RandAffined(keys, prob=1.0, rotate_range=(0, 0, 3.14))
    assert required_yx([affine], (32, 32)) == (46, 46)


def test_augmentation_margin_is_read_then_cropped(hcs_plate_v5):
    keys = [SRC, TGT]
    dm = _dm(hcs_plate_v5, augmentations=[RandSpatialCropd(keys, roi_size=(-1, 48, 48))])
    dm.setup("fit")
    calls = _count_reads(dm.train_dataset)
    batch = next(iter(dm.train_dataloader()))
    assert {(b.y[1] - b.y[0], b.x[1] - b.x[0]) for b in calls[0]} == {(48, 48)}
    assert batch["source"].shape[-2:] == (32, 32)


def test_target_2d_and_fg_mask(hcs_plate_v5):
    dm = _dm(hcs_plate_v5, target_2d=True, z_window_size=5, fg_mask_key="fg_mask")
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["source"].shape == (4, 1, 5, 32, 32)
    assert batch["target"].shape == (4, 1, 1, 32, 32)
    assert batch["fg_mask"].shape == (4, 1, 1, 32, 32)
    assert set(torch.unique(batch["fg_mask"]).tolist()) <= {0.0, 1.0}
    fov, t, z = batch["index"].image[0], int(batch["index"].time[0]), int(batch["index"].z[0])
    raw = _raw(hcs_plate_v5, fov, t, 1, (z + 2, z + 3), (48, 80), (48, 80))
    np.testing.assert_array_equal(batch["target"][0, 0].numpy(), raw)


def test_nonzero_resampling(hcs_plate_v5):
    threshold = float(np.median(_raw(hcs_plate_v5, "A/1/0", 0, 1, (0, 8), (0, 128), (0, 128))))
    dm = _dm(hcs_plate_v5, min_nonzero_fraction=0.3, nonzero_threshold=threshold)
    dm.setup("fit")
    samples = dm.train_dataset.__getitems__(list(range(8)))
    for sample in samples:
        assert (sample["target"] > threshold).float().mean() >= 0.3


@pytest.mark.skipif(importlib.util.find_spec("tensordict") is None, reason="needs viscy-data[mmap]")
def test_mmap_preload_matches_store(hcs_plate_v5, tmp_path):
    plain = _dm(hcs_plate_v5)
    plain.setup("fit")
    mm = _dm(hcs_plate_v5, mmap_preload=True, scratch_dir=tmp_path / "scratch")
    mm.setup("fit")
    assert list((tmp_path / "scratch").glob("*.mmap"))
    a = next(iter(plain.val_dataloader()))
    b = next(iter(mm.val_dataloader()))
    assert a["index"].image == b["index"].image
    assert a["source"].dtype == torch.uint16  # store dtype without CPU transforms
    torch.testing.assert_close(a["source"].float(), b["source"])
    torch.testing.assert_close(HCSDataModule.to_float(a)["target"], b["target"])


def test_spawn_workers(hcs_plate_v5):
    # no transforms: keep the workers' imports small (torch, tensorstore, viscy_data only)
    dm = _dm(hcs_plate_v5, num_workers=2, multiprocessing_context="spawn")
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.multiprocessing_context.get_start_method() == "spawn"
    seen = []
    for i, batch in enumerate(loader):
        assert batch["source"].shape == (4, 1, 3, 32, 32)
        assert batch["source"].float().max() > 0
        fov, t, z = batch["index"].image[0], int(batch["index"].time[0]), int(batch["index"].z[0])
        raw = _raw(hcs_plate_v5, fov, t, 1, (z, z + 3), (0, 128), (0, 128))
        target = batch["target"][0, 0].numpy()
        # the patch read in a worker is a window of the raw image
        assert any(
            np.array_equal(target, raw[:, y : y + 32, x : x + 32])
            for y in range(97)
            for x in range(97)
        )
        seen.extend(batch["index"].image)
        if i == 2:
            break
    assert set(seen) <= set(dm.train_fov_names)


# ------------------------------------------------------------------ bad input, at setup()


def test_bad_input_raises_at_setup(hcs_plate_v5, sharded_plate, tmp_path):
    with pytest.raises(ValueError, match=r"\['DAPI'\].*available channels: \['Phase3D', 'GFP'\]"):
        _dm(hcs_plate_v5, target_channel="DAPI").setup("fit")
    with pytest.raises(ValueError, match="z_window_size=9 is larger than Z=8 of FOV 'A/1/0'"):
        _dm(hcs_plate_v5, z_window_size=9).setup("fit")
    with pytest.raises(ValueError, match=r"yx_patch_size=\(256, 256\) is larger than the image"):
        _dm(hcs_plate_v5, yx_patch_size=(256, 256)).setup("fit")
    with pytest.raises(ValueError, match="No positions left"):
        _dm(hcs_plate_v5, include_fov_names=["Z/9/9"]).setup("predict")
    with pytest.raises(ValueError, match="both need at least one FOV"):
        _dm(hcs_plate_v5, include_fov_names=["A/1/0"]).setup("fit")
    norm = NormalizeSampled([SRC], level="fov_statistics")
    with pytest.raises(ValueError, match="channel 'Phase3D' is missing in FOV 'A/1/0'"):
        _dm(sharded_plate, normalizations=[norm]).setup("fit")
    (tmp_path / "not_a_plate.zarr").mkdir()
    with pytest.raises(ValueError, match="not_a_plate.zarr"):
        _dm(type("P", (), {"path": tmp_path / "not_a_plate.zarr"})).setup("fit")


# ------------------------------------------------------------------ Lightning Trainer


class _TinyTranslation(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Conv3d(1, 1, 1)
        self.seen: dict[str, list] = {"train": [], "val": [], "test": [], "predict": []}

    def _loss(self, batch):
        return nn.functional.mse_loss(self.net(batch["source"]), batch["target"])

    def training_step(self, batch, batch_idx):
        self.seen["train"].append(batch)
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.seen["val"].append(batch)
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch, batch_idx):
        self.seen["test"].append(batch)
        self.log("test_loss", self._loss(batch))

    def predict_step(self, batch, batch_idx):
        self.seen["predict"].append(batch)
        return {"prediction": self.net(batch["source"]), "index": batch["index"]}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


class _AddToChannel:
    """A GPU augmentation stand-in: adds a constant to one channel."""

    def __init__(self, key: str, value: float):
        self.key = key
        self.value = value

    def __call__(self, data):
        data = dict(data)
        data[self.key] = data[self.key] + self.value
        return data


def _trainer() -> L.Trainer:
    return L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )


def test_trainer_fit_validate_test_predict(hcs_plate_v5):
    dm = _dm(
        hcs_plate_v5,
        gpu_augmentations=[_AddToChannel(TGT, 1e6)],
        val_gpu_augmentations=[_AddToChannel(SRC, -1e6)],
        ground_truth_masks=hcs_plate_v5.path,
        batch_size=2,
    )
    model = _TinyTranslation()
    _trainer().fit(model, datamodule=dm)
    assert model.seen["train"]
    assert model.seen["val"]
    assert model.seen["train"][0]["target"].min() > 5e5  # gpu_augmentations ran in training
    assert model.seen["train"][0]["source"].max() < 5e5
    assert model.seen["val"][0]["source"].max() < -5e5  # val_gpu_augmentations in validation
    assert model.seen["val"][0]["target"].max() < 5e5
    _trainer().validate(model, datamodule=dm)
    assert len(model.seen["val"]) == 2

    _trainer().test(model, datamodule=dm)
    test_batch = model.seen["test"][0]
    assert test_batch["source"].shape == (2, 1, 3, 128, 128)  # whole FOV, no GPU augmentation
    assert test_batch["source"].max() < 5e5
    fov, t, z = test_batch["index"].image[0], int(test_batch["index"].time[0]), 1
    z = int(test_batch["index"].z[0]) + 1  # labels at the window's center slice
    raw = _raw(hcs_plate_v5, fov, t, 0, (z, z + 1), (0, 128), (0, 128))[0]
    np.testing.assert_array_equal(test_batch["labels"][0].numpy(), raw.astype(np.int32))

    predictions = _trainer().predict(model, datamodule=dm)
    assert predictions[0]["prediction"].shape == (2, 1, 3, 128, 128)
    assert predictions[0]["index"].image == model.seen["predict"][0]["index"].image
    assert len(dm.predict_dataset) == 4 * 3 * 6
    assert isinstance(dm.test_dataset, MaskTestDataset)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorstore") is None, reason="needs viscy-data[triplet]"
)
def test_no_fork_after_tensorstore_was_used(hcs_plate_v5):
    dm = _dm(hcs_plate_v5, num_workers=1)
    dm.setup("fit")
    dm.val_dataset.__getitems__([0])  # tensorstore now runs threads in this process
    loader = dm.val_dataloader()
    assert loader.multiprocessing_context.get_start_method() == "forkserver"
    explicit = _dm(hcs_plate_v5, num_workers=1, multiprocessing_context="forkserver")
    explicit.setup("fit")
    assert explicit.val_dataloader().multiprocessing_context.get_start_method() == "forkserver"


def test_predict_on_a_single_position_store(hcs_plate_v5):
    dm = _dm(type("P", (), {"path": hcs_plate_v5.path / "B" / "1" / "1"}), batch_size=3)
    dm.setup("predict")
    batch = dm.on_after_batch_transfer(next(iter(dm.predict_dataloader())), 0)
    assert batch["source"].shape == (3, 1, 3, 128, 128)
    assert batch["source"].dtype == torch.float32
    raw = _raw(hcs_plate_v5, "B/1/1", 0, 0, (0, 3), (0, 128), (0, 128))
    np.testing.assert_array_equal(batch["source"][0, 0].numpy(), raw)
    with pytest.raises(ValueError, match="single position"):
        dm.setup("fit")


# ------------------------------------------------------------------ 0.1.0 behaviour


class _Training:
    """Trainer flags of a training step, for calling ``on_after_batch_transfer`` directly."""

    training, sanity_checking, validating, testing, predicting = True, False, False, False, False


class _SeenShapes:
    """A batch-keyed GPU transform stand-in that records the shapes it is given."""

    keys = ("source", "target")

    def __init__(self):
        self.shapes: dict[str, tuple] = {}

    def __call__(self, data):
        self.shapes = {k: tuple(v.shape) for k, v in data.items() if isinstance(v, torch.Tensor)}
        return data


def test_gpu_augmentations_keyed_source_target_then_target_2d(hcs_plate_v5):
    """0.1.0 configs key GPU augmentations by ``source``/``target``; the mask moves with the
    target, and ``target_2d`` keeps the center slice after the augmentations."""
    from viscy_transforms import BatchedRandFlipd

    seen = _SeenShapes()
    flip = BatchedRandFlipd(keys=["source", "target"], spatial_axes=[2], prob=1.0)
    dm = _dm(
        hcs_plate_v5, z_window_size=5, target_2d=True, fg_mask_key="fg_mask", batch_size=2,
        gpu_augmentations=[seen, flip],
    )  # fmt: skip
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["target"].shape == (2, 1, 5, 32, 32)  # target_2d is not applied on the CPU
    original = {k: batch[k].clone().float() for k in ("source", "target", "fg_mask")}
    dm.trainer = _Training()
    out = dm.on_after_batch_transfer(batch, 0)
    assert seen.shapes["target"][2] == 5
    torch.testing.assert_close(out["source"], original["source"].flip(-1))
    torch.testing.assert_close(out["target"], original["target"][:, :, 2:3].flip(-1))
    torch.testing.assert_close(out["fg_mask"], original["fg_mask"][:, :, 2:3].flip(-1))
    assert out["fg_mask"].shape == (2, 1, 1, 32, 32)


def test_gpu_augmentations_keyed_by_channel_still_work_and_mixing_raises(hcs_plate_v5):
    from viscy_transforms import BatchedRandFlipd

    flip = BatchedRandFlipd(keys=[SRC, TGT], spatial_axes=[2], prob=1.0)
    dm = _dm(hcs_plate_v5, batch_size=2, gpu_augmentations=[flip])
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    original = batch["target"].clone().float()
    dm.trainer = _Training()
    torch.testing.assert_close(dm.on_after_batch_transfer(batch, 0)["target"], original.flip(-1))

    mixed = _dm(hcs_plate_v5, gpu_augmentations=[flip, _SeenShapes()])
    with pytest.raises(ValueError, match="mix batch keys"):
        mixed.setup("fit")


def test_num_samples_loads_batch_size_over_num_samples_stacks(hcs_plate_v5):
    """0.1.0: a step has ``batch_size`` patches, from ``batch_size // num_samples`` stacks."""
    from monai.transforms import RandSpatialCropSamplesd

    def crops(n):
        return [RandSpatialCropSamplesd([SRC, TGT], roi_size=(3, 32, 32), num_samples=n)]

    dm = _dm(hcs_plate_v5, batch_size=4, augmentations=crops(2), yx_patch_size=(32, 32))
    dm.setup("fit")
    assert dm.train_dataloader().batch_size == 2
    assert next(iter(dm.train_dataloader()))["source"].shape == (4, 1, 3, 32, 32)
    assert next(iter(dm.val_dataloader()))["source"].shape[0] == 4
    with pytest.raises(ValueError, match="batch_size=3 must be divisible by num_samples=2"):
        _dm(hcs_plate_v5, batch_size=3, augmentations=crops(2)).setup("fit")


def _from_store(plate, index, k: int, patch: np.ndarray) -> bool:
    """Whether ``patch`` (C, Z, Y, X) is the source+target box of sample ``k`` of ``index``
    at some Y/X place of its FOV."""
    fov, t, z = index.image[k], int(index.time[k]), int(index.z[k])
    depth, size = patch.shape[1], patch.shape[-1]
    full = np.stack([_raw(plate, fov, t, c, (z, z + depth), (0, 128), (0, 128)) for c in (0, 1)])
    views = np.lib.stride_tricks.sliding_window_view(full, (size, size), axis=(2, 3))
    return bool((views == patch.astype(np.float32)[..., None, None, :, :]).all((0, 1, 4, 5)).any())


@pytest.mark.parametrize("mode", ["num_samples", "patches_per_stack"])
def test_several_distinct_patches_per_window(hcs_plate_v5, mode):
    """A ``num_samples`` crop (0.1.0: distinct crops of the whole FOV) and our
    ``patches_per_stack`` both give different random boxes of one window, read in one call."""
    from monai.transforms import RandSpatialCropSamplesd

    if mode == "num_samples":
        crop = RandSpatialCropSamplesd([SRC, TGT], roi_size=(3, 32, 32), num_samples=2)
        dm = _dm(hcs_plate_v5, batch_size=8, augmentations=[crop])
    else:
        dm = _dm(hcs_plate_v5, batch_size=8, patches_per_stack=2)
    assert dm.train_patches_per_stack == 2
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.batch_size == 4
    calls = _count_reads(dm.train_dataset)
    batch = next(iter(loader))
    assert batch["source"].shape == (8, 1, 3, 32, 32)
    assert len(calls) == 1 and len(calls[0]) == 8  # 4 windows x 2 boxes, one read
    index, both = batch["index"], torch.cat([batch["source"], batch["target"]], dim=1).numpy()
    for k in range(0, 8, 2):  # the two patches of a window: same FOV, t and z, other Y/X
        assert (index.image[k], index.time[k], index.z[k]) == (
            index.image[k + 1], index.time[k + 1], index.z[k + 1]
        )  # fmt: skip
        assert not np.array_equal(both[k], both[k + 1])
        assert _from_store(hcs_plate_v5, index, k, both[k])
        assert _from_store(hcs_plate_v5, index, k + 1, both[k + 1])
    if mode == "num_samples":
        # the crop would return each box as it is: skipped, the batch stays float32
        assert dm.train_dataset.transform is None
        assert batch["source"].dtype == torch.float32
    if mode == "patches_per_stack":
        assert batch["source"].dtype == torch.uint16  # still no CPU transform
        with pytest.raises(ValueError, match="divisible by patches_per_stack=4 "):
            _dm(hcs_plate_v5, batch_size=6, patches_per_stack=4).setup("fit")
        with pytest.raises(ValueError, match="patches_per_stack must be >= 1"):
            _dm(hcs_plate_v5, patches_per_stack=0)


def test_crops_that_keep_the_box_are_skipped(hcs_plate_v5):
    """A crop of the size read (the 0.1.0 way to ask for the patch) is not run: same values
    and dtype; a smaller crop in Z still runs."""
    same = _dm(hcs_plate_v5, augmentations=[RandSpatialCropd([SRC, TGT], roi_size=(3, 32, 32))])
    same.setup("fit")
    assert same.train_dataset.transform is None
    assert same.train_dataloader().dataset.float_output
    z_crop = _dm(hcs_plate_v5, augmentations=[RandSpatialCropd([SRC, TGT], roi_size=(2, 32, 32))])
    z_crop.setup("fit")
    assert z_crop.train_dataset.transform is not None
    batch = next(iter(z_crop.train_dataloader()))
    assert batch["source"].shape == (4, 1, 2, 32, 32)


def test_training_drops_the_last_partial_batch(hcs_plate_v5):
    dm = _dm(hcs_plate_v5, batch_size=5)
    dm.setup("fit")
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert train.drop_last and not val.drop_last  # as in 0.1.0
    assert len(train) == len(dm.train_dataset) // 5


def test_unknown_stage_raises_not_implemented(hcs_plate_v5):
    # 0.1.0 raises NotImplementedError; ours is also a ValueError
    with pytest.raises(NotImplementedError, match="unknown stage 'bogus'"):
        _dm(hcs_plate_v5).setup("bogus")
    with pytest.raises(ValueError):
        _dm(hcs_plate_v5).setup("bogus")
