"""Every name of the published 0.1.0 API imports, keeps its signature, and constructs.

The names come from ``fixtures/api_0.1.0.json`` (parsed from ``shared/spec/api_0.1.0.md`` by
``python -m viscy_dev.api_fixtures``); the import, signature, bases and methods checks are
those of :class:`viscy_dev.api_checks.ConformanceTests`, each its own test case per name.
Here, each class is also constructed with only the documented required arguments.
"""

from __future__ import annotations

import json
from pathlib import Path

import monai.transforms
import pytest

import viscy_transforms
from viscy_dev.api_checks import ConformanceTests

FIXTURE = Path(__file__).parent / "fixtures" / "api_0.1.0.json"
ENTRIES: list[dict] = json.loads(FIXTURE.read_text())


class TestViscyTransformsAPI(ConformanceTests):
    sections = ["viscy_transforms"]
    fixture = FIXTURE


# Values for the documented parameters that have no default (plus device for ToDeviced).
REQUIRED = {
    "keys": ["a"],
    "roi_size": (2, 4, 4),
    "k": 2,
    "sigma_range": (1.0, 2.0),
    "magnitude_range": (1.0, 2.0),
    "spatial_axes": [0, 1, 2],
    "w_key": "w",
    "spatial_size": (2, 4, 4),
    "lower": 1.0,
    "upper": 99.0,
    "b_min": 0.0,
    "b_max": 1.0,
    "channel_map": {"source": ["Phase3D"], "target": ["GFP"]},
    "scale_factor": 2.0,
    "mode": "nearest",
    "level": "fov_statistics",
    "prob": 0.5,
    "gamma": (0.5, 2.0),
    "rotate_range": [3.14, 0.0, 0.0],
    "shear_range": [0.0, 0.01, 0.01],
    "scale_range": [0.0, 0.2, 0.2],
    "spatial_axis": [1, 2],
    "mean": 0.0,
    "std": 0.1,
    "sigma_x": (0.25, 0.75),
    "sigma_y": (0.25, 0.75),
    "sigma_z": 0.0,
    "factors": 0.2,
    "num_samples": 2,
}


def _documented_kwargs(entry: dict) -> dict:
    return {
        p["name"]: REQUIRED[p["name"]]
        for p in entry["params"]
        if not p.get("has_default") and p["kind"] not in ("var_positional", "var_keyword")
    }


def test_fixture_lists_every_name():
    assert len(ENTRIES) == 51
    assert {e["name"] for e in ENTRIES} <= set(viscy_transforms.__all__)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_published_name_constructs_from_its_documented_required_arguments(entry):
    cls = getattr(viscy_transforms, entry["name"])
    assert cls.__module__ == entry["module"]
    instance = cls(**_documented_kwargs(entry))
    assert isinstance(instance, cls)


def test_transforms_build_from_a_lightning_style_yaml():
    jsonargparse = pytest.importorskip("jsonargparse")
    yaml = pytest.importorskip("yaml")
    config = {
        "transforms": [
            {
                "class_path": "viscy_transforms.NormalizeSampled",
                "init_args": {"keys": ["GFP"], "level": "fov_statistics", "divisor": "iqr"},
            },
            {
                "class_path": "viscy_transforms.BatchedRandAffined",
                "init_args": {
                    "keys": ["GFP"],
                    "prob": 0.8,
                    "rotate_range": [3.14, 0.0, 0.0],
                    "scale_range": [[0.8, 1.2], [0.8, 1.2], [0.8, 1.2]],
                },
            },
            {
                "class_path": "viscy_transforms.RandGaussianSmoothd",
                "init_args": {
                    "keys": ["GFP"],
                    "prob": 0.5,
                    "sigma_x": [0.25, 0.75],
                    "sigma_y": [0.25, 0.75],
                    "sigma_z": 0.0,
                },
            },
            {
                "class_path": "viscy_transforms.BatchedStackChannelsd",
                "init_args": {"channel_map": {"source": ["GFP"]}},
            },
        ]
    }
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--transforms", type=list[monai.transforms.MapTransform])
    built = parser.instantiate(parser.parse_string(yaml.safe_dump(config))).transforms
    assert [type(t).__name__ for t in built] == [
        "NormalizeSampled",
        "BatchedRandAffined",
        "RandGaussianSmoothd",
        "BatchedStackChannelsd",
    ]
    assert built[1].scale_range == [(0.8, 1.2)] * 3
