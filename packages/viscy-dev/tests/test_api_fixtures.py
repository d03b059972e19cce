"""The spec parser and the command that writes a package's fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from viscy_dev.api_fixtures import find_spec_file, main, parse

SPEC = """
## pkg
- class `pkg.mod.Thing`(torch.nn.Module)
  - `__init__(a: int, b: tuple[int, int] = (1, 2), *, mode: Literal['x', 'y'] = 'x', **kw)`
  - methods: forward, reset
- function `pkg.mod.run(path, /, flag: bool = False, *args)`
- constant/type `NAMES` = `['a', 'b']`
- function `typing.Alias(?)`

## other
- function `other.f(x)`
"""

PACKAGES = Path(__file__).resolve().parents[2]
FIXTURES = {
    ("viscy_data",): PACKAGES / "viscy-data/tests/fixtures/api_0.1.0.json",
    ("viscy_models",): PACKAGES / "viscy-models/tests/fixtures/api_0.1.0.json",
    ("viscy_transforms",): PACKAGES / "viscy-transforms/tests/fixtures/api_0.1.0.json",
    ("viscy_utils", "viscy_utils.callbacks", "viscy_utils.evaluation"): (
        PACKAGES / "viscy-utils/tests/fixtures/api_0.1.0.json"
    ),
}


def test_parse_reads_classes_functions_constants_and_aliases():
    thing, run, names, alias = parse(SPEC, ["pkg"])
    assert (thing["kind"], thing["module"]) == ("class", "pkg.mod")
    assert thing["bases"] == ["torch.nn.Module"]
    assert thing["methods"] == ["forward", "reset"]
    assert [(p["name"], p["kind"]) for p in thing["params"]] == [
        ("a", "positional_or_keyword"),
        ("b", "positional_or_keyword"),
        ("mode", "keyword_only"),
        ("kw", "var_keyword"),
    ]
    b = thing["params"][1]
    assert (b["default_repr"], b["literal"], b["default"]) == ("(1, 2)", True, [1, 2])
    assert thing["params"][2]["default"] == "x"
    assert [(p["name"], p["kind"]) for p in run["params"]] == [
        ("path", "positional_only"),
        ("flag", "positional_or_keyword"),
        ("args", "var_positional"),
    ]
    assert (names["kind"], names["value"]) == ("constant", ["a", "b"])
    assert (alias["kind"], alias["module"], alias["params"]) == ("alias", None, [])
    assert [e["package"] for e in parse(SPEC, ["pkg", "other"])][-1] == "other"


def test_command_prints_the_fixture_and_rejects_an_unknown_section(tmp_path, capsys):
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    assert main([str(spec), "pkg"]) == 0
    assert json.loads(capsys.readouterr().out) == parse(SPEC, ["pkg"])
    assert main([str(spec), "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    result = subprocess.run(
        [sys.executable, "-m", "viscy_dev.api_fixtures", str(spec), "other"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["name"] == "f"


def test_spec_is_found_beside_an_ancestor(tmp_path, monkeypatch):
    monkeypatch.delenv("VISCY_SHARED", raising=False)
    (tmp_path / "shared/spec").mkdir(parents=True)
    (tmp_path / "shared/spec/api_0.1.0.md").write_text(SPEC)
    fixture = tmp_path / "repo/packages/p/tests/fixtures/api.json"
    assert find_spec_file(fixture) == tmp_path / "shared/spec/api_0.1.0.md"
    monkeypatch.setenv("VISCY_SHARED", str(tmp_path / "shared"))
    assert find_spec_file(Path("/")) == tmp_path / "shared/spec/api_0.1.0.md"


@pytest.mark.parametrize("sections", list(FIXTURES), ids=lambda s: s[0])
def test_committed_fixtures_are_what_the_command_writes(sections):
    spec = find_spec_file(FIXTURES[sections])
    if spec is None:
        pytest.skip("shared/spec/api_0.1.0.md is not beside this checkout")
    assert json.loads(FIXTURES[sections].read_text()) == parse(spec.read_text(), list(sections))
