"""TripletDataset / TripletDataModule on real synthetic OME-Zarr plates (NGFF 0.4 and 0.5)."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor

from viscy_data._typing import ULTRACK_INDEX_COLUMNS
from viscy_data.synthetic import write_synthetic_plate
from viscy_data.triplet import TripletDataModule, TripletDataset

pytest.importorskip("tensorstore")

SHAPE = (4, 2, 8, 128, 128)  # T, C, Z, Y, X
CHANNELS = ("Phase3D", "GFP")
KEYS = ("anchor", "positive", "negative")


@pytest.fixture(scope="module")
def plate_v05(tmp_path_factory):
    root = tmp_path_factory.mktemp("triplet_v05")
    return write_synthetic_plate(
        root / "plate.zarr",
        shape=SHAPE,
        channel_names=CHANNELS,
        wells=(("A", "1"), ("B", "1")),
        fovs_per_well=2,
        version="0.5",
        seed=1,
        tracks_path=root / "tracks",
        cells_per_fov=4,
    )


@pytest.fixture(scope="module")
def plate_v04(tmp_path_factory):
    root = tmp_path_factory.mktemp("triplet_v04")
    return write_synthetic_plate(
        root / "plate.zarr",
        shape=SHAPE,
        channel_names=CHANNELS,
        wells=(("A", "1"), ("B", "1")),
        fovs_per_well=1,
        version="0.4",
        seed=2,
        tracks_path=root / "tracks",
        cells_per_fov=4,
    )


def _datamodule(plate, tracks_path=None, **kwargs) -> TripletDataModule:
    options = {
        "data_path": str(plate.path),
        "tracks_path": str(tracks_path or plate.tracks_path),
        "source_channel": list(CHANNELS),
        "z_range": (2, 6),
        "initial_yx_patch_size": (48, 48),
        "final_yx_patch_size": (32, 32),
        "batch_size": 4,
        "num_workers": 0,
        "time_interval": 1,
        # the tiny plates put cells near the border: keep them (the 0.1.0 rule is tested below)
        "exclude_border_cells": False,
    }
    options.update(kwargs)
    return TripletDataModule(**options)


def _raw(plate, fov: str, t: int, y0: int, x0: int, size=(48, 48), z=(2, 6)) -> np.ndarray:
    from iohub.ngff import open_ome_zarr

    with open_ome_zarr(plate.path, mode="r") as store:
        data = store[fov]["0"]
        return np.asarray(data[t, :, z[0] : z[1], y0 : y0 + size[0], x0 : x0 + size[1]])


class _ZScore:
    """Test normalization in the style of NormalizeSampled: consumes ``norm_meta``."""

    def __init__(self, keys, level="fov_statistics"):
        self.keys, self.level = keys, level

    def __call__(self, sample):
        for key in self.keys:
            stats = sample["norm_meta"][key][self.level]
            mean = stats["mean"].view(-1, 1, 1, 1, 1)
            std = stats["std"].view(-1, 1, 1, 1, 1)
            sample[key] = (sample[key] - mean) / std
        return sample


class _RecordStage:
    """Test augmentation that records in which trainer stage it ran."""

    def __init__(self):
        self.trainer = None
        self.stages: list[str] = []

    def __call__(self, sample):
        t = self.trainer
        stage = "sanity" if t.sanity_checking else "train" if t.training else "val"
        self.stages.append(stage)
        return sample


class _TinyContrastive(LightningModule):
    def __init__(self, in_channels: int = 2):
        super().__init__()
        self.encoder = torch.nn.Conv3d(in_channels, 4, kernel_size=1)
        self.batches: list[dict] = []

    def _embed(self, x: Tensor) -> Tensor:
        return self.encoder(x).mean(dim=(2, 3, 4))

    def _step(self, batch: dict) -> Tensor:
        self.batches.append(batch)
        anchor, positive, negative = (self._embed(batch[k]) for k in KEYS)
        return torch.nn.functional.triplet_margin_loss(anchor, positive, negative)

    def training_step(self, batch, batch_idx):
        return self._step(batch)

    def validation_step(self, batch, batch_idx):
        self._step(batch)

    def predict_step(self, batch, batch_idx):
        return {"features": self._embed(batch["anchor"]), "index": batch["index"]}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _trainer(**kwargs) -> Trainer:
    options = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    options.update(kwargs)
    return Trainer(**options)


def test_fit_through_trainer(plate_v05):
    augment = _RecordStage()
    dm = _datamodule(
        plate_v05,
        normalizations=[_ZScore(list(CHANNELS))],
        augmentations=[augment],
        augment_validation=False,
    )
    model = _TinyContrastive()
    trainer = _trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=1, num_sanity_val_steps=1
    )
    augment.trainer = trainer
    trainer.fit(model, datamodule=dm)
    assert trainer.state.finished
    assert len(model.batches) == 2 + 1 + 1  # train, sanity, validation
    for batch in model.batches:
        assert sorted(batch) == sorted(KEYS)  # norm meta consumed
        for key in KEYS:
            assert batch[key].shape == (4, 2, 4, 32, 32)
            assert batch[key].dtype == torch.float32
            # z-scored with per-FOV statistics: values are no longer raw uint16 counts
            assert batch[key].abs().mean() < 50
    assert augment.stages == ["train"] * 6  # 2 batches x 3 keys; not in sanity check or val
    # the split is by FOV: training and validation FOVs do not overlap
    assert set(dm.train_dataset.fov_names).isdisjoint(dm.val_dataset.fov_names)
    assert len(dm.train_dataset.fov_names) == 3


def test_augment_validation_but_never_sanity(plate_v05):
    augment = _RecordStage()
    dm = _datamodule(
        plate_v05, augmentations=[augment], augment_validation=True, time_interval="any"
    )
    trainer = _trainer(
        fast_dev_run=False,
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=1,
    )
    augment.trainer = trainer
    trainer.fit(_TinyContrastive(), datamodule=dm)
    assert augment.stages.count("sanity") == 0
    assert augment.stages.count("train") == 3  # once per key
    assert augment.stages.count("val") == 3


def test_fast_dev_run_v04(plate_v04):
    dm = _datamodule(plate_v04)
    model = _TinyContrastive()
    _trainer(fast_dev_run=True).fit(model, datamodule=dm)
    assert model.batches
    assert model.batches[0]["anchor"].shape == (4, 2, 4, 32, 32)


def _all_tracks(plate) -> pd.DataFrame:
    tables = []
    for fov in plate.fov_names:
        tables.append(pd.read_csv(plate.tracks_path / fov / "tracks.csv").assign(fov_name=fov))
    return pd.concat(tables, ignore_index=True)


@pytest.mark.parametrize("plate_name", ["plate_v04", "plate_v05"])
def test_predict_through_trainer(plate_name, request):
    plate = request.getfixturevalue(plate_name)
    dm = _datamodule(plate, batch_size=5)
    predictions = _trainer().predict(_TinyContrastive(), datamodule=dm)
    index = pd.concat(
        [
            pd.DataFrame({c: list(np.asarray(p["index"][c])) for c in ULTRACK_INDEX_COLUMNS})
            for p in predictions
        ],
        ignore_index=True,
    )
    assert list(index.columns) == ULTRACK_INDEX_COLUMNS
    expected = _all_tracks(plate)
    assert len(index) == len(expected)  # every cell once
    got = set(zip(index["fov_name"], index["track_id"], index["t"], strict=True))
    want = set(zip(expected["fov_name"], expected["track_id"], expected["t"], strict=True))
    assert got == want
    assert sum(len(p["features"]) for p in predictions) == len(expected)


def test_predict_cells_subset(plate_v05):
    tracks = _all_tracks(plate_v05)
    fov = plate_v05.fov_names[1]
    track_ids = sorted(tracks[tracks["fov_name"] == fov]["track_id"].unique())[:2]
    dm = _datamodule(
        plate_v05, predict_cells=True, include_fov_names=[fov], include_track_ids=track_ids
    )
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert set(batch["index"]["fov_name"]) == {fov}
    assert set(batch["index"]["track_id"].tolist()) <= set(track_ids)
    want = tracks[(tracks["fov_name"] == fov) & tracks["track_id"].isin(track_ids)]
    assert len(dm.predict_dataset) == len(want)


def test_patches_match_raw_reads_and_batch_is_one_read(plate_v05):
    dm = _datamodule(plate_v05)
    dm.setup("fit")
    dataset = dm.train_dataset
    calls = []
    read = dataset.reader.read_patches

    def counting(boxes):
        calls.append(len(boxes))
        return read(boxes)

    dataset.reader.read_patches = counting
    try:
        batch = dataset.__getitems__([0, 1, 2, 3])
    finally:
        dataset.reader.read_patches = read
    assert len(calls) == 1
    assert calls[0] <= 12
    rows = dataset.sample_rows([0, 1, 2, 3])
    for key in KEYS:
        for i, row in enumerate(rows[key]):
            fov = dataset.fov_names[dataset.index.fov_index[row]]
            raw = _raw(
                plate_v05,
                fov,
                int(dataset.index.t[row]),
                int(dataset._y0[row]),
                int(dataset._x0[row]),
            )
            np.testing.assert_array_equal(batch[key][i].numpy(), raw)
    # positives are the same track one frame later; negatives another track
    tracks = dataset.index.track
    assert (dataset.index.t[rows["positive"]] == dataset.index.t[rows["anchor"]] + 1).all()
    assert (tracks[rows["negative"]] != tracks[rows["anchor"]]).all()


def test_reproducible_for_a_seed(plate_v05):
    def first_batch(seed):
        dm = _datamodule(plate_v05, seed=seed)
        dm.setup("fit")
        return next(iter(dm.train_dataloader())), dm.train_dataset.sample_rows(range(8))

    (a, rows_a), (b, rows_b), (_, rows_c) = first_batch(3), first_batch(3), first_batch(4)
    for key in KEYS:
        assert torch.equal(a[key], b[key])
        np.testing.assert_array_equal(rows_a[key], rows_b[key])
    # another seed draws other negatives for the same anchors (and shuffles differently)
    assert not np.array_equal(rows_a["negative"], rows_c["negative"])


def test_thread_workers_and_pickle(plate_v05):
    dm = _datamodule(plate_v05, num_workers=2, batch_size=3, cache_pool_bytes=32 * 1024**2)
    dm.setup("fit")
    assert dm.train_dataset.reader.cache_bytes == 32 * 1024**2
    loader = dm.train_dataloader()
    threaded = list(loader)
    shapes = [batch["anchor"].shape for batch in threaded]
    # draws depend on the seed and the batch's indices only, not on which thread ran it
    serial = list(
        _datamodule(plate_v05, num_workers=0, batch_size=3)._loader(dm.train_dataset, True)
    )
    assert len(serial) == len(threaded)
    for a, b in zip(serial, threaded, strict=True):
        for key in KEYS:
            assert torch.equal(a[key], b[key])
    assert len(shapes) == len(loader)
    assert shapes[0] == (3, 2, 4, 48, 48)
    clone = pickle.loads(pickle.dumps(dm.train_dataset))  # spawn-safe: no open handles
    assert torch.equal(
        clone.__getitems__([0, 1])["positive"], dm.train_dataset.__getitems__([0, 1])["positive"]
    )
    assert pickle.loads(pickle.dumps(loader.collate_fn)) is loader.collate_fn


def _custom_tracks(plate, tmp_path, tables: dict[str, pd.DataFrame]):
    """Tracks folder for ``plate`` where FOVs in ``tables`` get the given table."""
    root = tmp_path / "tracks"
    shutil.copytree(plate.tracks_path, root)
    for fov, table in tables.items():
        table.to_csv(root / fov / "tracks.csv", index=False)
    return root


def test_lineage_following_positive_and_border_cells(plate_v05, tmp_path):
    fov = plate_v05.fov_names[0]
    # track 1 (t=0..1) divides into 2 and 3 (t=2..3); track 4 sits in a corner all along
    rows = [(1, t, -1, 60.4, 60.6) for t in range(2)]
    rows += [(2, t, 1, 40.0, 60.0) for t in (2, 3)] + [(3, t, 1, 80.0, 60.0) for t in (2, 3)]
    rows += [(4, t, -1, 2.0, 126.0) for t in range(4)]
    table = pd.DataFrame(rows, columns=["track_id", "t", "parent_track_id", "y", "x"])
    tracks_root = _custom_tracks(plate_v05, tmp_path, {fov: table})
    dm = _datamodule(
        plate_v05,
        tracks_root,
        fit_include_wells=[fov.rsplit("/", 1)[0]],
        split_ratio=1.0,
        follow_lineage=True,
    )
    dm.setup("fit")
    dataset = dm.train_dataset if fov in dm.train_dataset.fov_names else dm.val_dataset
    index = dataset.index
    in_fov = index.fov_index == dataset.fov_names.index(fov)
    ids = index.tracks["track_id"].to_numpy()
    last_of_parent = np.flatnonzero(in_fov & (ids == 1) & (index.t == 1))[0]
    position = int(np.flatnonzero(index.anchors == last_of_parent)[0])
    daughters = set()
    for start in range(20):  # different batches draw different daughters
        batch_indices = [position, start % len(dataset)]
        rows_ = dataset.sample_rows(batch_indices)
        daughters.add(int(ids[rows_["positive"][0]]))
    assert daughters == {2, 3}
    # by default (0.1.0) positives stay on the anchor's track: track 1's last frame is no anchor
    dm_own = _datamodule(
        plate_v05, tracks_root, fit_include_wells=[fov.rsplit("/", 1)[0]], split_ratio=1.0
    )
    dm_own.setup("fit")
    own = dm_own.train_dataset.index
    anchor_keys = set(zip(own.tracks["fov_name"].to_numpy()[own.anchors].tolist(),
                          own.tracks["track_id"].to_numpy()[own.anchors].tolist(),
                          own.t[own.anchors].tolist(), strict=True))  # fmt: skip
    assert (fov, 1, 0) in anchor_keys and (fov, 1, 1) not in anchor_keys
    assert len(own) == len(index) - 1
    # the corner cell keeps a full patch, shifted inward, and reads the right pixels
    corner = np.flatnonzero(in_fov & (ids == 4))[0]
    assert (dataset._y0[corner], dataset._x0[corner]) == (0, 128 - 48)
    patch = dataset._read_rows(np.array([corner]))[0].numpy()
    np.testing.assert_array_equal(patch, _raw(plate_v05, fov, int(index.t[corner]), 0, 80))
    # excluding border cells drops it
    dm_ex = _datamodule(
        plate_v05,
        tracks_root,
        fit_include_wells=[fov.rsplit("/", 1)[0]],
        split_ratio=1.0,
        exclude_border_cells=True,
    )
    dm_ex.setup("fit")
    kept = pd.concat([d.index.tracks for d in (dm_ex.train_dataset, dm_ex.val_dataset) if d])
    assert not ((kept["fov_name"] == fov) & (kept["track_id"] == 4)).any()


def test_on_after_batch_transfer_normalizes_and_crops(plate_v05):
    dm = _datamodule(plate_v05, normalizations=[_ZScore(list(CHANNELS), "timepoint_statistics")])
    dm.setup("fit")
    dataset = dm.train_dataset
    batch = dataset.__getitems__([0, 1])
    raw = batch["anchor"].clone()
    meta = batch["anchor_norm_meta"]
    out = dm.on_after_batch_transfer(batch, 0)
    assert "anchor_norm_meta" not in out
    assert "positive_norm_meta" not in out
    assert out["anchor"].shape == (2, 2, 4, 32, 32)
    for c, name in enumerate(CHANNELS):
        stats = meta[name]["timepoint_statistics"]
        want = (raw[:, c, :, 8:40, 8:40] - stats["mean"].view(-1, 1, 1, 1)) / stats["std"].view(
            -1, 1, 1, 1
        )
        torch.testing.assert_close(out["anchor"][:, c], want)


def _break(plate, tmp_path, fov_index: int, how: str):
    fov = plate.fov_names[fov_index]
    root = tmp_path / "tracks"
    shutil.copytree(plate.tracks_path, root)
    csv = root / fov / "tracks.csv"
    table = pd.read_csv(csv)
    if how == "missing":
        csv.unlink()
    elif how == "unreadable":
        csv.write_bytes(b"")
    elif how == "no_x":
        table.drop(columns="x").to_csv(csv, index=False)
    elif how == "nan_id":
        table["track_id"] = table["track_id"].astype(float)
        table.loc[1, "track_id"] = np.nan
        table.to_csv(csv, index=False)
    elif how == "text_id":
        table["track_id"] = table["track_id"].astype(str)
        table.loc[1, "track_id"] = "cell"
        table.to_csv(csv, index=False)
    elif how == "t_beyond":
        table.loc[1, "t"] = SHAPE[0]
        table.to_csv(csv, index=False)
    elif how == "outside":
        table["y"] = table["y"].astype(float)
        table.loc[1, "y"] = SHAPE[3] + 3.0
        table.to_csv(csv, index=False)
    return root, fov


@pytest.mark.parametrize(
    ("how", "error", "match"),
    [
        ("missing", FileNotFoundError, "No tracks CSV for FOV"),
        ("unreadable", ValueError, "Cannot read tracks CSV"),
        ("no_x", ValueError, r"lacks column\(s\) \['x'\]"),
        ("nan_id", ValueError, r"'track_id' must hold integers.*line\(s\) 3"),
        ("text_id", ValueError, r"'track_id' must hold integers.*non-numeric.*line\(s\) 3"),
        ("t_beyond", ValueError, r"'t' is beyond.*line\(s\) 3"),
        ("outside", ValueError, r"'y' is outside the image.*line\(s\) 3"),
    ],
)
def test_bad_tracks_fail_at_setup(plate_v04, tmp_path, how, error, match):
    root, fov = _break(plate_v04, tmp_path, 1, how)
    dm = _datamodule(plate_v04, root, split_ratio=0.5)
    with pytest.raises(error, match=match) as err:
        dm.setup("fit")
    assert fov in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"z_range": (4, 9)}, r"z_range \(4, 9\) is outside the Z stack of FOV"),
        (
            {"initial_yx_patch_size": (256, 64), "final_yx_patch_size": (32, 32)},
            r"larger than the image of FOV",
        ),
        ({"source_channel": ["Phase3D", "RFP"]}, r"Unknown channel\(s\) \['RFP'\]"),
    ],
)
def test_bad_geometry_or_channel_fail_at_setup(plate_v04, kwargs, match):
    dm = _datamodule(plate_v04, **kwargs)
    with pytest.raises(ValueError, match=match):
        dm.setup("fit")


def test_missing_plate_or_tracks_folder(plate_v04, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        _datamodule(plate_v04, data_path=str(tmp_path / "nope.zarr")).setup("fit")
    with pytest.raises(FileNotFoundError, match="tracks_path"):
        _datamodule(plate_v04, tracks_path=str(tmp_path / "none")).setup("fit")


def test_final_larger_than_initial_rejected(plate_v04):
    with pytest.raises(ValueError, match="final_yx_patch_size"):
        _datamodule(plate_v04, initial_yx_patch_size=(32, 32), final_yx_patch_size=(48, 48))


def test_dataset_signature_with_positions(plate_v04):
    """The 0.1.0 constructor: iohub positions and tracks tables, reader opened lazily."""
    from iohub.ngff import open_ome_zarr

    tables = [
        pd.read_csv(plate_v04.tracks_path / fov / "tracks.csv") for fov in plate_v04.fov_names
    ]
    with open_ome_zarr(plate_v04.path, mode="r") as plate:
        positions = [plate[fov] for fov in plate_v04.fov_names]
        dataset = TripletDataset(
            positions, tables, ["GFP"], (32, 32), slice(0, 8), time_interval="any",
            exclude_border_cells=False,
        )  # fmt: skip
        pair = TripletDataset(positions, tables, ["GFP"], (32, 32), (2, 6), time_interval=1)
    batch = dataset.__getitems__([0, 1, 2])
    assert batch["anchor"].shape == (3, 1, 8, 32, 32)
    assert pair.__getitems__([0])["positive"].shape == (1, 1, 4, 32, 32)
    torch.testing.assert_close(batch["anchor"], batch["positive"])  # "any": same cell, same t
    assert len(dataset) == sum(len(t) for t in tables)


def test_fit_fov_selection(plate_v05):
    excluded = plate_v05.fov_names[0]
    dm = _datamodule(plate_v05, fit_exclude_fovs=[excluded], split_ratio=0.5)
    dm.setup("fit")
    used = dm.train_dataset.fov_names + dm.val_dataset.fov_names
    assert sorted(used) == sorted(plate_v05.fov_names[1:])
    dm = _datamodule(plate_v05, fit_include_wells=["B/1"])
    dm.setup("fit")
    used = dm.train_dataset.fov_names + dm.val_dataset.fov_names
    assert sorted(used) == [f for f in plate_v05.fov_names if f.startswith("B/1/")]
    with pytest.raises(ValueError, match="No FOV .* left for fitting"):
        _datamodule(plate_v05, fit_include_wells=["C/3"]).setup("fit")


def test_missing_normalization_metadata_fails_at_setup(tmp_path):
    plate = write_synthetic_plate(
        tmp_path / "plate.zarr",
        shape=(2, 1, 4, 64, 64),
        channel_names=("GFP",),
        wells=(("A", "1"),),
        fovs_per_well=2,
        version="0.4",
        normalization=False,
        tracks_path=tmp_path / "tracks",
        cells_per_fov=2,
    )
    dm = _datamodule(
        plate,
        source_channel="GFP",
        z_range=(0, 4),
        initial_yx_patch_size=(32, 32),
        final_yx_patch_size=(32, 32),
        normalizations=[_ZScore(["GFP"])],
    )
    with pytest.raises(ValueError, match="'fov_statistics' for channel 'GFP' is missing in FOV"):
        dm.setup("fit")
    # without normalization transforms the same plate is fine
    dm = _datamodule(
        plate,
        source_channel="GFP",
        z_range=(0, 4),
        initial_yx_patch_size=(32, 32),
        final_yx_patch_size=(32, 32),
    )
    dm.setup("fit")
    assert "anchor_norm_meta" not in dm.train_dataset.__getitems__([0])


def test_training_drops_the_last_partial_batch(plate_v04):
    # 0.1.0: the training loader drops the last partial batch, validation keeps it
    dm = _datamodule(plate_v04, batch_size=5, split_ratio=0.5)
    dm.setup("fit")
    n_train, n_val = len(dm.train_dataset), len(dm.val_dataset)
    assert n_train % 5 and n_train > 5
    assert [len(b["anchor"]) for b in dm.train_dataloader()] == [5] * (n_train // 5)
    assert sum(len(b["anchor"]) for b in dm.val_dataloader()) == n_val


def test_unknown_stage_raises_not_implemented(plate_v04):
    with pytest.raises(NotImplementedError, match="unknown stage 'bogus'"):  # as 0.1.0
        _datamodule(plate_v04).setup("bogus")


def test_border_rule_of_0_1_0(tmp_path):
    """0.1.0 drops a cell whose center is within half a patch of the Y/X border (inclusive),
    anchors and positive candidates alike; Z is not checked."""
    from iohub.ngff import open_ome_zarr

    from viscy_data import TripletDataset
    from viscy_data._tracks import clear_of_border

    # extent 64, patch 32: kept iff 16 < center < 48
    kept = clear_of_border(np.array([14, 15, 16, 17, 47, 48, 49]), 32, 64)
    assert kept.tolist() == [False, False, False, True, True, False, False]

    with open_ome_zarr(tmp_path / "p.zarr", layout="hcs", mode="w", channel_names=["a"]) as p:
        pos = p.create_position("A", "1", "0")
        pos.create_image("0", np.zeros((3, 1, 8, 64, 64), dtype=np.float32))
    rows, tid = [], 0

    def track(points):
        nonlocal tid
        for t, (z, y, x) in enumerate(points):
            rows.append({"track_id": tid, "t": t, "id": 10 * tid + t, "parent_track_id": -1,
                         "parent_id": -1, "z": z, "y": y, "x": x})  # fmt: skip
        tid += 1

    for y in (14, 15, 16, 17, 47, 48, 49, 50):
        track([(4, y, 32)] * 2)
    for x in (15, 16, 48, 49):
        track([(4, 32, x)] * 2)
    for z in (0, 1, 7):  # Z outside the range is not a reason to drop
        track([(z, 32, 32)] * 2)
    track([(4, 32, 32), (4, 5, 32)])  # its positive crosses the border
    table = pd.DataFrame(rows).assign(fov_name="/A/1/0")
    plate = open_ome_zarr(tmp_path / "p.zarr", mode="r")
    positions = [pos for _, pos in plate.positions()]

    def anchors(**kw):
        ds = TripletDataset(positions, [table.copy()], ["a"], (32, 32), slice(2, 6), **kw)
        kept = ds.index.tracks.iloc[ds.index.anchors]
        return sorted(zip(kept["track_id"].tolist(), kept["t"].tolist(), strict=True))

    predict = anchors(fit=False)
    assert predict == [(i, t) for i in (3, 4, 12, 13, 14) for t in (0, 1)] + [(15, 0)]
    # fit: anchors need a positive at t + 1 that is kept too (track 15 loses its anchor)
    assert anchors(fit=True, time_interval=1) == [(i, 0) for i in (3, 4, 12, 13, 14)]
    # opt-in: keep border cells (window shifted inward)
    assert len(anchors(fit=False, exclude_border_cells=False)) == len(table)
