"""Every viscy_models name of the published 0.1.0 API imports and keeps its signature.

The names come from ``fixtures/api_0.1.0.json`` (parsed from ``shared/spec/api_0.1.0.md`` by
``python -m viscy_dev.api_fixtures``); the checks are those of
:class:`viscy_dev.api_checks.ConformanceTests`, each its own test case per name.
"""

from __future__ import annotations

from pathlib import Path

from viscy_dev.api_checks import ConformanceTests


class TestViscyModelsAPI(ConformanceTests):
    sections = ["viscy_models"]
    fixture = Path(__file__).parent / "fixtures" / "api_0.1.0.json"
