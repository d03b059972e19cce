"""Every 0.1.0 name of viscy_utils (.callbacks, .evaluation) imports and keeps its signature.

The names come from ``fixtures/api_0.1.0.json`` (parsed from ``shared/spec/api_0.1.0.md`` by
``python -m viscy_dev.api_fixtures``); the checks are those of
:class:`viscy_dev.api_checks.ConformanceTests`, each its own test case per name.
"""

from __future__ import annotations

from pathlib import Path

from viscy_dev.api_checks import ConformanceTests
from viscy_dev.api_fixtures import MODULES_SPEC_FILE, parse_modules


class TestViscyUtilsAPI(ConformanceTests):
    sections = ["viscy_utils", "viscy_utils.callbacks", "viscy_utils.evaluation"]
    fixture = Path(__file__).parent / "fixtures" / "api_0.1.0.json"


class TestViscyUtilsModulesAPI(ConformanceTests):
    """Every module surface of 0.1.0's viscy_utils (``shared/spec/api_0.1.0_modules.md``):
    each name at its module path, listed in that module's ``__all__``, with a signature
    that accepts the documented calls (fixture from ``viscy_dev.api_fixtures.parse_modules``)."""

    sections = [
        "viscy_utils",
        "viscy_utils.callbacks",
        "viscy_utils.callbacks.embedding_writer",
        "viscy_utils.callbacks.prediction_writer",
        "viscy_utils.evaluation",
        "viscy_utils.losses",
        "viscy_utils.losses.spotlight",
    ]
    fixture = Path(__file__).parent / "fixtures" / "api_0.1.0_modules.json"
    spec_file = MODULES_SPEC_FILE
    parser = staticmethod(parse_modules)
