"""Every 0.1.0 name of viscy_utils (.callbacks, .evaluation) imports and keeps its signature.

The names come from ``fixtures/api_0.1.0.json`` (parsed from ``shared/spec/api_0.1.0.md`` by
``tools/api_spec.py`` at the repository root, which also holds the checks). Each check is
its own test case per name. Known mismatches are listed in ``MISMATCHES`` and expected to
fail (strict xfail), so a fix shows up as XPASS and the entry must then be removed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SECTIONS = ["viscy_utils", "viscy_utils.callbacks", "viscy_utils.evaluation"]
FIXTURES = Path(__file__).parent / "fixtures"
API_SPEC = Path(__file__).resolve().parents[3] / "tools" / "api_spec.py"  # shared checks


def _load_helper():
    spec = importlib.util.spec_from_file_location("_viscy_utils_api_spec", API_SPEC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


api = _load_helper()
ENTRIES: list[dict] = json.loads((FIXTURES / "api_0.1.0.json").read_text())

# (check, name) -> what differs from the spec; strict xfail until fixed in the source.
MISMATCHES: dict[tuple[str, str], str] = {}


def _cases(check: str, entries: list[dict]) -> list:
    cases = []
    for entry in entries:
        reason = MISMATCHES.get((check, entry["name"]))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        cases.append(pytest.param(entry, id=entry["name"], marks=marks))
    return cases


def _run(check, entry: dict) -> None:
    try:
        check(entry)
    except api.MissingExtra as error:
        pytest.skip(f"optional extra missing: {error}")


def test_fixture_matches_the_spec_file_when_present():
    spec = api.find_spec_file()
    if spec is None:
        pytest.skip("shared/spec/api_0.1.0.md is not beside this checkout")
    assert api.parse(spec.read_text(), SECTIONS) == ENTRIES


def test_every_mismatch_names_a_documented_name():
    names = {e["name"] for e in ENTRIES}
    assert {name for _, name in MISMATCHES} <= names


WITH_MODULE = [e for e in ENTRIES if e["module"]]
WITH_SIGNATURE = [e for e in ENTRIES if e["kind"] in ("class", "function")]
CLASSES = [e for e in ENTRIES if e["kind"] == "class"]
assert not [e for e in ENTRIES if e["kind"] not in ("class", "function")]  # no constants


@pytest.mark.parametrize("entry", _cases("module_path", WITH_MODULE))
def test_imports_from_documented_module(entry):
    _run(api.check_module_path, entry)


@pytest.mark.parametrize("entry", _cases("top_level", ENTRIES))
def test_imports_from_package_top_level(entry):
    _run(api.check_top_level, entry)


@pytest.mark.parametrize("entry", _cases("signature", WITH_SIGNATURE))
def test_signature_accepts_documented_calls(entry):
    _run(api.check_signature, entry)


@pytest.mark.parametrize("entry", _cases("bases", CLASSES))
def test_class_keeps_documented_bases(entry):
    _run(api.check_bases, entry)


@pytest.mark.parametrize("entry", _cases("methods", CLASSES))
def test_class_keeps_documented_methods(entry):
    _run(api.check_methods, entry)


# --- the checker itself: it must catch each kind of break (plain functions, no imports)
def _ours_a_b(a, b=(1, 2), *, c=None): ...
def _ours_b_a(b=(1, 2), a=None): ...
def _ours_kw_only(a, *, b=(1, 2)): ...
def _ours_new_required(a, b=(1, 2), c=None, *, d): ...
def _ours_int_default(a, b=0): ...


@pytest.mark.parametrize(
    ("ours", "documented", "problem"),
    [
        (_ours_a_b, "a: int, b: tuple[int, int] = [1, 2], *, c: str | None = None", None),
        (_ours_a_b, "a, b=(1, 2), x: float = 0.5", "lacks parameter 'x'"),
        (_ours_b_a, "a, b=(1, 2)", "positional parameter 0 is 'b', documented 'a'"),
        (_ours_kw_only, "a, b=(1, 2)", "positional parameter 1 is None, documented 'b'"),
        (_ours_a_b, "a, b=(1, 3)", "'b' defaults to (1, 2), documented (1, 3)"),
        (_ours_a_b, "a, b=(1, 2), **kwargs", "takes no **kwargs"),
        (_ours_new_required, "a, b=(1, 2)", "requires undocumented parameter 'd'"),
        (_ours_int_default, "a, b: bool = False", "'b' defaults to 0, documented False"),
    ],
)
def test_signature_check_catches_incompatible_changes(ours, documented, problem):
    problems = api.signature_mismatches(ours, {"params": api._params(documented)})
    assert problem in problems if problem else problems == []


def test_a_module_needing_a_missing_extra_is_reported_as_such(tmp_path, monkeypatch):
    (tmp_path / "_needs_extra.py").write_text(
        "raise ImportError(\"needs foo: pip install 'pkg[foo]'\")\n"
    )
    (tmp_path / "_broken.py").write_text("raise ImportError('a real bug')\n")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(api.MissingExtra, match="pip install"):
        api.import_module("_needs_extra")
    with pytest.raises(ImportError, match="a real bug"):
        api.import_module("_broken")
