"""The package imports fast and without optional dependencies; extras are asked for by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

import viscy_data
from viscy_data._imports import optional_import


def test_missing_optional_dependency_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install 'viscy-data\[triplet\]'"):
        optional_import("tensorstore_that_does_not_exist", extra="triplet")


def test_known_module_maps_to_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"viscy-data\[livecell\]"):
        optional_import("pycocotools")


def test_present_module_is_returned():
    assert optional_import("json").dumps([1]) == "[1]"


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        viscy_data.no_such_name  # noqa: B018


def test_import_pulls_no_heavy_or_optional_module():
    code = (
        "import sys, viscy_data; "
        "heavy = {'torch', 'lightning', 'monai', 'tensorstore', 'tensordict', 'pycocotools'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
