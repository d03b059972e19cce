"""The public types and constants of viscy_data._typing."""

from __future__ import annotations

import typing
from pathlib import Path

import viscy_data
from viscy_data import _typing


def test_constants_match_release():
    assert viscy_data.ULTRACK_INDEX_COLUMNS == [
        "fov_name", "track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"
    ]  # fmt: skip
    assert viscy_data.LABEL_INFECTION_STATE == {"uninfected": 0, "infected": 1, "unknown": -1}
    assert viscy_data.LABEL_CELL_CYCLE_STATE["telophase"] == 6
    assert viscy_data.LABEL_CELL_DIVISION_STATE["mitosis"] == 1
    assert viscy_data.LABEL_CELL_REMODELING_STATE["remodeling"] == 1
    assert viscy_data.CELL_INDEX_CORE_COLUMNS[:3] == ["cell_id", "experiment", "store_path"]
    assert "interval_minutes" in viscy_data.CELL_INDEX_TIMELAPSE_COLUMNS
    assert viscy_data.CELL_INDEX_GROUPING_COLUMNS == ["perturbation", "channel_name", "microscope"]
    assert viscy_data.CELL_INDEX_OPS_COLUMNS == ["gene_name", "reporter", "sgRNA"]


def test_types_are_what_the_release_exposes():
    for name in ("ChannelMap", "ChannelNormStats", "LevelNormStats", "CellIndex", "Sample",
                 "SampleMeta", "SegmentationSample", "TripletSample"):  # fmt: skip
        cls = getattr(viscy_data, name)
        assert issubclass(cls, dict), name
    index = viscy_data.HCSStackIndex("A/1/0", 2, 3)
    assert isinstance(index, tuple)
    assert (index.image, index.time, index.z) == ("A/1/0", 2, 3)
    assert typing.get_args(viscy_data.AnnotationColumns)[0] == "infection_state"
    assert set(typing.get_type_hints(viscy_data.ChannelMap)) == {"source", "target"}
    assert viscy_data.ChannelMap.__required_keys__ == frozenset({"source"})
    assert {"index", "source", "target", "norm_meta"} <= set(viscy_data.Sample.__annotations__)


def test_typing_imports_nothing_of_the_package():
    source = Path(_typing.__file__).read_text()
    assert "from viscy_data" not in source
    assert "import viscy_data" not in source
