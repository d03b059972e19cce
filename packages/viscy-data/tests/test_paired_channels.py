"""PairedChannelTripletDataModule: triplet views split into named channel sets."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("tensorstore")

from viscy_data import PairedChannelTripletDataModule


def test_views_are_split_into_channel_groups(hcs_plate_v5):
    plate = hcs_plate_v5
    dm = PairedChannelTripletDataModule(
        channel_groups={"lf": ["Phase3D"], "fl": ["GFP"], "both": ["GFP", "Phase3D"]},
        data_path=str(plate.path),
        tracks_path=str(plate.tracks_path),
        z_range=(0, 2),
        initial_yx_patch_size=(32, 32),
        final_yx_patch_size=(24, 24),
        batch_size=4,
        num_workers=0,
        time_interval=1,
        return_negative=False,
    )
    assert dm.source_channel == ["Phase3D", "GFP"]  # each channel read once
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    crop = slice(4, 28)
    raw = {k: batch[k].float()[..., crop, crop].clone() for k in ("anchor", "positive")}
    out = dm.on_after_batch_transfer(batch, 0)
    for key in ("anchor", "positive"):
        assert set(out[key]) == {"lf", "fl", "both"}
        torch.testing.assert_close(out[key]["lf"], raw[key][:, [0]])
        torch.testing.assert_close(out[key]["fl"], raw[key][:, [1]])
        torch.testing.assert_close(out[key]["both"], raw[key][:, [1, 0]])


def test_bad_channel_groups():
    with pytest.raises(ValueError, match="do not pass source_channel"):
        PairedChannelTripletDataModule(
            channel_groups={"lf": ["Phase3D"]}, source_channel=["GFP"], data_path="x"
        )
    with pytest.raises(ValueError, match=r"\['fl'\] have no channels"):
        PairedChannelTripletDataModule(
            channel_groups={"lf": ["Phase3D"], "fl": []}, data_path="x", tracks_path="y",
            z_range=(0, 1),
        )  # fmt: skip
