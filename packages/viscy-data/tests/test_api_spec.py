"""Every viscy_data name of the published 0.1.0 API imports and keeps its signature.

The names come from ``fixtures/api_0.1.0.json`` (parsed from ``shared/spec/api_0.1.0.md`` by
``python -m viscy_dev.api_fixtures``); the checks are those of
:class:`viscy_dev.api_checks.ConformanceTests`, each its own test case per name.
"""

from __future__ import annotations

from pathlib import Path

from viscy_dev.api_checks import ConformanceTests
from viscy_dev.api_fixtures import MODULES_SPEC_FILE, parse_modules


class TestViscyDataAPI(ConformanceTests):
    sections = ["viscy_data"]
    fixture = Path(__file__).parent / "fixtures" / "api_0.1.0.json"
    # (check, name) -> what differs from the spec; strict xfail until fixed in the source.
    mismatches = {}
    # (name, parameter) -> (our default, why). Deliberate changes of a default: every call
    # written against 0.1.0 still works, only the behaviour of the omitted argument differs.
    changed_defaults = {
        ("TripletDataModule", "cache_pool_bytes"): (
            None,
            "0.1.0's 0 meant no chunk cache (about 17 triplets/s); None uses the reader's "
            "bounded default cache, and an explicit 0 still disables it",
        ),
    }


class TestCellIndexModuleAPI(ConformanceTests):
    """``viscy_data.cell_index`` as 0.1.0's module surface lists it
    (``shared/spec/api_0.1.0_modules.md``): every name in its ``__all__``, same signatures."""

    sections = ["viscy_data.cell_index"]
    fixture = Path(__file__).parent / "fixtures" / "api_0.1.0_modules.json"
    spec_file = MODULES_SPEC_FILE
    parser = staticmethod(parse_modules)
    mismatches = {}
