"""Every viscy_models name of the 0.1.0 module surfaces (``shared/spec/api_0.1.0_modules.md``)
imports from its module, is exported by the module that lists it and keeps its signature.

The fixture ``fixtures/api_0.1.0_modules.json`` is parsed from the addendum by
``python -m viscy_dev.api_fixtures .../api_0.1.0_modules.md viscy_models``; the checks are
those of :class:`viscy_dev.api_checks.ConformanceTests`.
"""

from __future__ import annotations

from pathlib import Path

from viscy_dev.api_checks import ConformanceTests


class TestViscyModelsModuleSurfaces(ConformanceTests):
    sections = ["viscy_models"]
    fixture = Path(__file__).parent / "fixtures" / "api_0.1.0_modules.json"
    modules_spec = True
    mismatches = {
        (check, "CellDinoModel"): "viscy_models.foundation.cell_dino is not written yet"
        for check in ("module_path", "top_level", "signature", "bases", "methods")
    }


def test_the_fixture_lists_every_module_surface():
    names = {(e["package"], e["name"]) for e in TestViscyModelsModuleSurfaces.entries()}
    assert ("viscy_models.components.blocks", "UNeXt2Decoder") in names
    assert ("viscy_models.foundation", "CellDinoModel") in names
    assert len({package for package, _ in names}) >= 15
