"""Every 0.1.0 name of viscy_utils (.callbacks, .evaluation) imports and keeps its signature.

The names come from ``fixtures/api_0.1.0.json`` (parsed from ``shared/spec/api_0.1.0.md`` by
``tools/api_spec.py`` at the repository root, which also defines the tests: each check is its
own test case per name; see ``conformance_tests`` there).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
API_SPEC = Path(__file__).resolve().parents[3] / "tools" / "api_spec.py"  # shared checks

_spec = importlib.util.spec_from_file_location("_viscy_utils_api_spec", API_SPEC)
api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api)

SECTIONS = ["viscy_utils", "viscy_utils.callbacks", "viscy_utils.evaluation"]

globals().update(api.conformance_tests(SECTIONS, FIXTURES / "api_0.1.0.json"))
