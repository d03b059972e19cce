"""The differential harness as tests: opt-in, ``VISCY_ORACLE=/path/to/0.1.0/python``.

    VISCY_ORACLE=/work/oracle-venv/bin/python uv run pytest tools/compat -m oracle

Not in the default suite (``tools/`` is outside ``testpaths``), and skipped without the
variable. One test per section; a failure lists the undocumented differences.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("compat_runner", HERE / "runner.py")
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

ORACLE = os.environ.get("VISCY_ORACLE")
pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(not ORACLE, reason="set VISCY_ORACLE to the 0.1.0 venv's python"),
]


@pytest.mark.parametrize("section", runner.available_sections())
def test_section_matches_oracle(section, tmp_path):
    rows = runner.run_section(section, ORACLE, tmp_path, os.environ.get("COMPAT_ONLY"), 3600)
    assert rows, f"section {section} produced no rows"
    diffs = [f"{r['name']}: {r.get('note', '')}" for r in rows if r["status"] == "DIFF"]
    assert diffs == [], "undocumented differences from 0.1.0:\n" + "\n".join(diffs)
