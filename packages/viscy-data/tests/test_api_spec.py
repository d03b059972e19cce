"""Every viscy_data name of the published 0.1.0 API imports and keeps its signature.

The names come from ``fixtures/api_0.1.0.json`` (parsed from ``shared/spec/api_0.1.0.md`` by
``tools/api_spec.py`` at the repository root, which also defines the tests: each check is its
own test case per name; see ``conformance_tests`` there).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
API_SPEC = Path(__file__).resolve().parents[3] / "tools" / "api_spec.py"  # shared checks

_spec = importlib.util.spec_from_file_location("_viscy_data_api_spec", API_SPEC)
api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api)

# (check, name) -> what differs from the spec; strict xfail until fixed in the source.
MISMATCHES: dict[tuple[str, str], str] = {}

# (name, parameter) -> (our default, why). Deliberate changes of a default: every call written
# against 0.1.0 still works, only the behaviour of the omitted argument differs.
CHANGED_DEFAULTS: dict[tuple[str, str], tuple[object, str]] = {
    ("TripletDataModule", "cache_pool_bytes"): (
        None,
        "0.1.0's 0 meant no chunk cache (about 17 triplets/s); None uses the reader's bounded "
        "default cache, and an explicit 0 still disables it",
    ),
}

globals().update(
    api.conformance_tests(
        ["viscy_data"],
        FIXTURES / "api_0.1.0.json",
        mismatches=MISMATCHES,
        changed_defaults=CHANGED_DEFAULTS,
        self_tests=True,  # the checker's own tests run once, here
    )
)
