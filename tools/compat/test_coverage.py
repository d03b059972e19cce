"""The spec-coverage counter (no oracle needed): ``uv run pytest tools/compat/test_coverage.py``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("compat_coverage", HERE / "coverage.py")
coverage = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(coverage)

pytestmark = pytest.mark.skipif(
    not (coverage.spec_dir() / "api_0.1.0.md").exists(), reason="spec files not found"
)


def test_spec_names_are_viscy_classes_and_functions():
    names = coverage.spec_names()
    assert ("viscy_transforms", "BatchedRandSharpend") in names
    assert names[("viscy_utils", "zscore")] == "function"
    assert ("viscy_utils", "MixedLoss") in names  # from the subpackage surfaces
    assert not any(package in ("typing", "builtins") for package, _ in names)
    assert ("viscy_data", "CELL_INDEX_CORE_COLUMNS") not in names  # constants do not count


def test_covers_and_class_both_count(tmp_path):
    (tmp_path / "api_0.1.0.md").write_text(
        "- class `viscy_a._x.Foo`(builtins.object)\n- function `viscy_a.m.bar(x)`\n"
    )
    (tmp_path / "api_0.1.0_modules.md").write_text(
        "## `viscy_a`\n- class `Baz` (defined in `viscy_a.deep`): `Baz()`\n"
    )
    rows = [{"class": "viscy_a.Foo", "status": "ok"}, {"covers": ["viscy_a.deep.Baz"]}]
    hit, spec = coverage.coverage(rows, tmp_path)
    assert spec == {("viscy_a", "Foo"), ("viscy_a", "bar"), ("viscy_a", "Baz")}
    assert ("viscy_a", "Foo") in hit and ("viscy_a", "Baz") in hit
    assert ("viscy_a", "bar") not in hit
    skipped = coverage.coverage([{"class": "viscy_a.m.bar", "status": "skip"}], tmp_path)[0]
    assert ("viscy_a", "bar") not in skipped


def test_every_transforms_and_losses_spec_name_has_a_case():
    hit, spec = coverage.coverage()
    missing = sorted(n for p, n in spec - hit if p == "viscy_transforms")
    assert missing == []
    assert {("viscy_utils", "MixedLoss"), ("viscy_utils", "SpotlightLoss")} <= hit
