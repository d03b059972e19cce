"""GPUTransformDataModule, CachedOmeZarrDataModule and the shared VolumeCache."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr
from lightning.pytorch import LightningModule, Trainer

from viscy_data._cache import VolumeCache
from viscy_data.gpu_aug import CachedOmeZarrDataModule, GPUTransformDataModule
from viscy_data.synthetic import write_synthetic_plate

SHAPE = (3, 2, 4, 32, 32)  # T, C, Z, Y, X


@pytest.fixture(scope="session")
def plate_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu_aug") / "plate.zarr"
    write_synthetic_plate(path, shape=SHAPE, channel_names=("Phase3D", "GFP"), fovs_per_well=2)
    return path


class MarkStage:
    """A 'GPU' transform that records which stage ran it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, batch: dict) -> dict:
        return {**batch, "stage": self.name}


class TinyModule(LightningModule):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.layer = torch.nn.Linear(1, 1)
        self.seen: list[str] = []

    def _step(self, batch):
        self.seen.append(batch["stage"])
        return self.layer(batch[self.key].mean().view(1, 1)).sum()

    def training_step(self, batch, batch_idx):
        return self._step(batch)

    def validation_step(self, batch, batch_idx):
        self._step(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def make_module(plate_path, **kwargs) -> CachedOmeZarrDataModule:
    settings = dict(
        data_path=plate_path,
        channels=["Phase3D", "GFP"],
        batch_size=2,
        num_workers=0,
        split_ratio=0.5,
        train_cpu_transforms=[],
        val_cpu_transforms=[],
        train_gpu_transforms=[MarkStage("train")],
        val_gpu_transforms=[MarkStage("val")],
        pin_memory=False,
    )
    settings.update(kwargs)
    return CachedOmeZarrDataModule(**settings)


def true_volume(plate_path, fov: str, t: int) -> np.ndarray:
    with open_ome_zarr(plate_path, mode="r") as plate:
        return np.asarray(plate[fov]["0"][t]).astype(np.float32)


def test_setup_splits_fovs_and_serves_volumes(plate_path):
    dm = make_module(plate_path)
    dm.setup("fit")
    try:
        train_fovs, val_fovs = set(dm.train_dataset.fov_names), set(dm.val_dataset.fov_names)
        assert len(train_fovs) == len(val_fovs) == 2
        assert not train_fovs & val_fovs
        assert len(dm.train_dataset) == len(dm.val_dataset) == 2 * SHAPE[0]
        sample = dm.train_dataset[4]
        fov, t = dm.train_dataset.volume_key(4)
        expected = true_volume(plate_path, fov, t)
        assert sample["Phase3D"].shape == (1, *SHAPE[2:])
        np.testing.assert_array_equal(sample["GFP"][0].numpy(), expected[1])
        # normalization metadata resolved to the sample's timepoint
        stats = sample["norm_meta"]["GFP"]["timepoint_statistics"]
        assert {"mean", "std"} <= set(stats)
        assert all(isinstance(v, float) for v in stats.values())
    finally:
        dm.teardown("fit")
    assert dm.caches == {}


def test_validation_never_gets_training_volumes(plate_path):
    dm = make_module(plate_path)
    dm.setup("fit")
    try:
        for i in range(len(dm.train_dataset)):
            dm.train_dataset[i]
        assert len(dm.caches["train"]) == len(dm.train_dataset)
        assert len(dm.caches["val"]) == 0
        for i in range(len(dm.val_dataset)):
            fov, t = dm.val_dataset.volume_key(i)
            got = dm.val_dataset[i]["Phase3D"][0].numpy()
            np.testing.assert_array_equal(got, true_volume(plate_path, fov, t)[0])
        # second pass comes from the cache and still matches
        fov, t = dm.val_dataset.volume_key(1)
        np.testing.assert_array_equal(
            dm.val_dataset[1]["GFP"][0].numpy(), true_volume(plate_path, fov, t)[1]
        )
    finally:
        dm.teardown("fit")


def test_cache_is_bounded_in_bytes(plate_path):
    volume_bytes = 2 * int(np.prod(SHAPE[2:])) * 2  # 2 channels of uint16
    dm = make_module(plate_path, cache_bytes=3 * volume_bytes)
    dm.setup("fit")
    try:
        assert sum(c.nbytes for c in dm.caches.values()) <= 3 * volume_bytes
        for i in range(len(dm.train_dataset)):
            dm.train_dataset[i]
        assert 0 < len(dm.caches["train"]) < len(dm.train_dataset)
        # uncached volumes are still served correctly
        fov, t = dm.train_dataset.volume_key(len(dm.train_dataset) - 1)
        np.testing.assert_array_equal(
            dm.train_dataset[len(dm.train_dataset) - 1]["Phase3D"][0].numpy(),
            true_volume(plate_path, fov, t)[0],
        )
    finally:
        dm.teardown("fit")


def test_volume_cache_marks_filled_only_after_a_valid_write(tmp_path):
    cache = VolumeCache([("a", (2, 3), "uint16"), ("b", (2, 3), "uint16")], 1000, tmp_path)
    with pytest.raises(ValueError, match="expects shape"):
        cache.put("a", np.zeros((3, 3), np.uint16))
    assert "a" not in cache
    assert cache.get("a") is None
    cache.put("a", np.full((2, 3), 7, np.uint16))
    clone = pickle.loads(pickle.dumps(cache))  # what a spawned worker receives
    np.testing.assert_array_equal(clone.get("a"), np.full((2, 3), 7))
    assert clone.get("b") is None
    path = cache.path
    cache.close()
    assert not (tmp_path / path).exists()


def test_fit_with_trainer_runs_gpu_transforms_per_stage(plate_path):
    dm = make_module(plate_path)
    model = TinyModule("GFP")
    trainer = Trainer(
        accelerator="cpu",
        fast_dev_run=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert model.seen == ["train", "val"]
    assert dm.caches == {}  # teardown released the cache files


def test_bad_channel_fails_at_setup(plate_path):
    dm = make_module(plate_path, channels=["Phase3D", "DAPI"])
    with pytest.raises(ValueError, match="DAPI"):
        dm.setup("fit")


def test_bad_batch_size_is_reported_before_loading(plate_path):
    dm = make_module(plate_path, batch_size=0)
    dm.setup("fit")
    try:
        with pytest.raises(ValueError, match="batch_size"):
            dm.train_dataloader()
    finally:
        dm.teardown("fit")


def test_base_class_is_abstract():
    with pytest.raises(TypeError):
        GPUTransformDataModule()


def test_mixin_order_keeps_the_datamodule_first():
    from viscy_data.select import SelectWell

    mro = CachedOmeZarrDataModule.__mro__
    assert mro.index(GPUTransformDataModule) < mro.index(SelectWell)


def test_well_and_fov_selection(plate_path):
    dm = make_module(plate_path, include_wells=["A/1"], skip_cache=True)
    dm.setup("fit")
    assert sorted(dm.train_dataset.fov_names + dm.val_dataset.fov_names) == ["A/1/0", "A/1/1"]
    assert dm.caches == {}
    dm = make_module(plate_path, include_wells=["A/1"], exclude_fovs=["A/1/1"])
    with pytest.raises(ValueError, match="At least 2 FOVs"):
        dm.setup("fit")


def test_dataset_accepts_a_plain_mapping_as_cache(plate_path):
    from viscy_data.gpu_aug import CachedOmeZarrDataset

    with open_ome_zarr(plate_path, mode="r") as plate:
        positions = [pos for _, pos in plate.positions()][:1]
        cache: dict = {}
        ds = CachedOmeZarrDataset(positions, ["GFP"], cache)
        first = ds[2]["GFP"]
    assert list(cache) == [("A/1/0", 2)]  # keyed by (FOV, t), not by dataset index
    np.testing.assert_array_equal(first[0].numpy(), true_volume(plate_path, "A/1/0", 2)[1])


def test_training_keeps_the_last_partial_batch(plate_path):
    # 0.1.0 (checked against the release): the GPU-augmentation DataModules' training
    # loader keeps the last partial batch; validation too
    dm = make_module(plate_path, batch_size=4)
    dm.setup("fit")
    try:
        n = len(dm.train_dataset)
        assert n % 4
        sizes = [len(b["GFP"]) for b in dm.train_dataloader()]
        assert sizes == [4] * (n // 4) + [n % 4]
        assert not dm.train_dataloader().drop_last and not dm.val_dataloader().drop_last
    finally:
        dm.teardown("fit")
