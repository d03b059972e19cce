"""Every name of the published 0.1.0 API imports, keeps its signature, and constructs.

The list of names and parameters is a committed fixture (``data/``), parsed from
``shared/spec/api_0.1.0.md``; when that file is beside the checkout, the fixture is checked
against it.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
from pathlib import Path

import monai.transforms
import numpy as np
import pytest
import torch

import viscy_transforms

_CLASS = re.compile(
    r"^- class `viscy_transforms\.(?P<module>[\w.]+)\.(?P<name>\w+)`\((?P<bases>.*)\)$"
)
_INIT = re.compile(r"^  - `__init__\((?P<params>.*)\)(?: -> .*)?`$")


def _split_top_level(text: str) -> list[str]:
    parts, depth, quote, current = [], 0, None, []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _parse_param(text: str) -> dict[str, str | None]:
    default = None
    if "=" in text:
        head, default = text.split("=", 1) if ": " not in text else text.rsplit(" = ", 1)
        text, default = head.strip(), default.strip()
    name = text.split(":", 1)[0].strip()
    return {"name": name, "default": default}


def parse_viscy_transforms(markdown: str) -> list[dict]:
    """One entry per class: module, name, bases and ``__init__`` parameters (name, default)."""
    section = markdown.split("## viscy_transforms", 1)[1].split("\n## ", 1)[0]
    entries: list[dict] = []
    for line in section.splitlines():
        if match := _CLASS.match(line):
            bases = [b.strip() for b in match["bases"].split(",")]
            entries.append(
                {"module": match["module"], "name": match["name"], "bases": bases, "params": []}
            )
        elif (match := _INIT.match(line)) and entries:
            params = [_parse_param(p) for p in _split_top_level(match["params"])]
            entries[-1]["params"] = [p for p in params if p["name"] not in ("/", "self")]
    return entries


# --- the published API, walked name by name
FIXTURE = Path(__file__).parent / "data" / "api_0.1.0_viscy_transforms.json"
_ROOT = Path(__file__).resolve().parents[3]
SPEC_CANDIDATES = [
    *([Path(os.environ["VISCY_SHARED"])] if os.environ.get("VISCY_SHARED") else []),
    _ROOT.parent / "shared",  # CI: shared/ beside the clone
    _ROOT.parent.parent / "shared",  # a worktree one level deeper
]
SPEC_FILE = "spec/api_0.1.0.md"
ENTRIES: list[dict] = json.loads(FIXTURE.read_text())

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
    kwargs = {}
    for param in entry["params"]:
        name = param["name"]
        if name.startswith("*") or param["default"] is not None:
            continue
        kwargs[name] = REQUIRED[name]
    return kwargs


def _literal(text: str):
    """The documented default as a python value, or a marker if it is not a plain literal."""
    text = text.strip("'")
    if text == "<class 'numpy.float32'>":
        return np.float32
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a plain string default written without quotes


def _resolve_base(base: str) -> type | None:
    package, _, name = base.rpartition(".")
    if package == "monai":
        return getattr(monai.transforms, name)
    if package == "viscy_transforms":
        return getattr(viscy_transforms, name)
    if package == "torch":
        return getattr(torch.nn, name)
    return None


def test_fixture_matches_the_spec_file_when_present():
    spec = next((p / SPEC_FILE for p in SPEC_CANDIDATES if (p / SPEC_FILE).is_file()), None)
    if spec is None:
        pytest.skip("shared/spec/api_0.1.0.md is not beside this checkout")
    assert parse_viscy_transforms(spec.read_text()) == ENTRIES


def test_fixture_lists_every_name():
    assert len(ENTRIES) == 51
    assert {e["name"] for e in ENTRIES} <= set(viscy_transforms.__all__)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_published_name_imports_constructs_and_keeps_its_signature(entry):
    cls = getattr(viscy_transforms, entry["name"])
    assert cls.__module__ == f"viscy_transforms.{entry['module']}"
    for base in entry["bases"]:
        resolved = _resolve_base(base)
        if resolved is not None:
            assert issubclass(cls, resolved), f"{entry['name']} is not a {base}"
    signature = inspect.signature(cls.__init__)
    for param in entry["params"]:
        name = param["name"].lstrip("*")
        if param["name"].startswith("*"):
            continue
        assert name in signature.parameters, f"{entry['name']} lacks parameter {name}"
        if param["default"] is not None:
            ours = signature.parameters[name].default
            documented = _literal(param["default"])
            if isinstance(documented, list):
                ours = list(ours)
            assert ours == documented, f"{entry['name']}.{name}: {ours!r} != {documented!r}"
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
