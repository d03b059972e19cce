"""viscy_data.channel_utils (a 0.1.0 public module): channel kinds from channel labels."""

from __future__ import annotations

import pytest

from viscy_data.channel_utils import parse_channel_name

LF, FL, VS, UNK = "labelfree", "fluorescence", "virtual_stain", "unknown"


def _fl(ex: int, em: int, cube: str | None = None) -> dict:
    out: dict = {"channel_type": FL}
    if cube is not None:
        out["filter_cube"] = cube
    return {**out, "excitation_nm": ex, "emission_nm": em}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Phase3D", {"channel_type": LF}),
        ("xPhase", {"channel_type": LF}),
        ("Brightfield", {"channel_type": LF}),
        ("BF", {"channel_type": LF}),
        ("BF_x", {"channel_type": LF}),
        ("raw BF", {"channel_type": LF}),
        ("BFP", {"channel_type": UNK}),
        ("xbfx", {"channel_type": UNK}),
        ("DIC", {"channel_type": LF}),
        ("raw DIC", {"channel_type": LF}),
        ("DIC_1", {"channel_type": UNK}),
        ("Retardance", {"channel_type": LF}),
        ("Orientation", {"channel_type": UNK}),
        ("GFP", {"channel_type": UNK}),
        ("", {"channel_type": UNK}),
        ("nuclei_prediction", {"channel_type": VS}),
        ("Phase3D_prediction", {"channel_type": VS}),
        ("EX488 EM525 prediction", {"channel_type": VS}),
        ("Virtual", {"channel_type": VS}),
        (
            "raw GFP EX488 EM525-45",
            {"channel_type": FL, "filter_cube": "GFP", "excitation_nm": 488, "emission_nm": 525},
        ),
        (
            "Raw mCherry ex561 em600-37",
            {
                "channel_type": FL,
                "filter_cube": "mCherry",
                "excitation_nm": 561,
                "emission_nm": 600,
            },
        ),
        (
            "raw BF EX488 EM525",  # fluorescence is checked before label-free
            {"channel_type": FL, "filter_cube": "BF", "excitation_nm": 488, "emission_nm": 525},
        ),
        ("GFP EX488 EM525-45", {"channel_type": FL, "excitation_nm": 488, "emission_nm": 525}),
        ("raw GFP EX488EM525", {"channel_type": FL, "excitation_nm": 488, "emission_nm": 525}),
        (
            "raw GFP/mCherry EX488 EM525",
            {"channel_type": FL, "excitation_nm": 488, "emission_nm": 525},
        ),
        ("raw GFP EX 488 EM525", {"channel_type": UNK}),
        ("raw X EM600-37 EX561", {"channel_type": UNK}),
        ("raw GFP EX488.5 EM525-45", {"channel_type": UNK}),
    ],
)
def test_parse_channel_name_as_in_0_1_0(name, expected):
    assert parse_channel_name(name) == expected


def test_non_string_raises_attribute_error():
    with pytest.raises(AttributeError):
        parse_channel_name(None)  # type: ignore[arg-type]
