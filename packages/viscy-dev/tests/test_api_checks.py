"""The checks catch each kind of break of a call written against 0.1.0 (plain functions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from viscy_dev.api_checks import (
    MissingExtra,
    check_constant,
    check_top_level,
    import_module,
    signature_mismatches,
)
from viscy_dev.api_fixtures import parse


def _params(documented: str) -> list[dict]:
    markdown = f"\n## pkg\n- function `pkg.mod.f({documented})`\n"
    return parse(markdown, ["pkg"])[0]["params"]


def ours_a_b(a, b=(1, 2), *, c=None): ...
def ours_b_a(b=(1, 2), a=None): ...
def ours_kw_only(a, *, b=(1, 2)): ...
def ours_new_required(a, b=(1, 2), c=None, *, d): ...
def ours_int_default(a, b=0): ...


@pytest.mark.parametrize(
    ("ours", "documented", "problem"),
    [
        (ours_a_b, "a: int, b: tuple[int, int] = [1, 2], *, c: str | None = None", None),
        (ours_a_b, "a, b=(1, 2), x: float = 0.5", "lacks parameter 'x'"),
        (ours_b_a, "a, b=(1, 2)", "positional parameter 0 is 'b', documented 'a'"),
        (ours_kw_only, "a, b=(1, 2)", "positional parameter 1 is None, documented 'b'"),
        (ours_a_b, "a, b=(1, 3)", "'b' defaults to (1, 2), documented (1, 3)"),
        (ours_a_b, "a, b=(1, 2), **kwargs", "takes no **kwargs"),
        (ours_new_required, "a, b=(1, 2)", "requires undocumented parameter 'd'"),
        (ours_int_default, "a, b: bool = False", "'b' defaults to 0, documented False"),
    ],
)
def test_signature_check_catches_incompatible_changes(ours, documented, problem):
    problems = signature_mismatches(ours, {"params": _params(documented)})
    assert problem in problems if problem else problems == []


def test_a_module_needing_a_missing_extra_is_reported_as_such(tmp_path, monkeypatch):
    (tmp_path / "_needs_extra.py").write_text(
        "raise ImportError(\"needs foo: pip install 'pkg[foo]'\")\n"
    )
    (tmp_path / "_broken.py").write_text("raise ImportError('a real bug')\n")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(MissingExtra, match="pip install"):
        import_module("_needs_extra")
    with pytest.raises(ImportError, match="a real bug"):
        import_module("_broken")


def test_top_level_and_constant_checks(tmp_path, monkeypatch):
    (tmp_path / "_pkg_ok.py").write_text("X = [1, 2]\n__all__ = ['X']\n")
    monkeypatch.syspath_prepend(tmp_path)
    entry = {"package": "_pkg_ok", "name": "X", "module": None, "value": [1, 2]}
    check_top_level(entry)
    check_constant(entry)
    with pytest.raises(AssertionError, match="documented"):
        check_constant({**entry, "value": [1, 3]})
    with pytest.raises(AssertionError, match="no attribute 'Y'"):
        check_top_level({**entry, "name": "Y"})


CONFORMANCE_MODULE = """
from pathlib import Path

from viscy_dev.api_checks import ConformanceTests


class TestFakeAPI(ConformanceTests):
    sections = ["_fake_pkg"]
    fixture = Path(__file__).parent / "api.json"
    mismatches = {("signature", "g"): "known: g lost its default"}
"""


def _pytest_outcomes(folder: Path) -> dict[str, str]:
    """Run pytest on ``folder`` in a subprocess; ``Class::test[id] -> outcome``."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    report = folder / "report.xml"
    env = {**os.environ, "PYTHONPATH": str(folder)}
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        key = f"{case.get('classname').rsplit('.', 1)[-1]}::{case.get('name')}"
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes[key] = "failed"
        elif skipped is not None:
            outcomes[key] = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        else:
            outcomes[key] = "passed"
    return outcomes


def test_conformance_tests_run_per_name_and_xfail_known_mismatches(tmp_path):
    (tmp_path / "_fake_pkg.py").write_text(
        "def f(a, b=1): ...\ndef g(a): ...\n__all__ = ['f', 'g']\n"
    )
    spec = "\n## _fake_pkg\n- function `_fake_pkg.f(a, b=1)`\n- function `_fake_pkg.g(a, b=2)`\n"
    (tmp_path / "api.json").write_text(json.dumps(parse(spec, ["_fake_pkg"])))
    (tmp_path / "test_fake_api.py").write_text(textwrap.dedent(CONFORMANCE_MODULE))
    outcomes = _pytest_outcomes(tmp_path)
    assert outcomes["TestFakeAPI::test_signature_accepts_documented_calls[f]"] == "passed"
    assert outcomes["TestFakeAPI::test_signature_accepts_documented_calls[g]"] == "xfailed"
    assert outcomes["TestFakeAPI::test_imports_from_package_top_level[g]"] == "passed"
    assert outcomes["TestFakeAPI::test_constant_has_documented_value[none]"] == "skipped"
