"""Every viscy_models name of the 0.1.0 module surfaces (``shared/spec/api_0.1.0_modules.md``)
imports from its module, is exported by the module that lists it and keeps its signature.

The fixture ``fixtures/api_0.1.0_modules.json`` is parsed from the addendum by
``viscy_dev.api_fixtures.parse_modules`` (the ``sections`` below); the checks are
those of :class:`viscy_dev.api_checks.ConformanceTests`.
"""

from __future__ import annotations

from pathlib import Path

from viscy_dev.api_checks import ConformanceTests
from viscy_dev.api_fixtures import MODULES_SPEC_FILE, parse_modules


class TestViscyModelsModuleSurfaces(ConformanceTests):
    sections = [
        "viscy_models",
        "viscy_models.components",
        "viscy_models.components.blocks",
        "viscy_models.components.conv_block_2d",
        "viscy_models.components.conv_block_3d",
        "viscy_models.components.heads",
        "viscy_models.components.stems",
        "viscy_models.contrastive",
        "viscy_models.contrastive.encoder",
        "viscy_models.contrastive.resnet3d",
        "viscy_models.foundation",
        "viscy_models.unet",
        "viscy_models.unet.blocks",
        "viscy_models.unet.unet25d",
        "viscy_models.unet.unet2d",
        "viscy_models.unet.unet3d",
        "viscy_models.unet.unet3d_base",
        "viscy_models.vae",
    ]
    fixture = Path(__file__).parent / "fixtures" / "api_0.1.0_modules.json"
    spec_file = MODULES_SPEC_FILE
    parser = staticmethod(parse_modules)
    mismatches = {}


def test_the_fixture_lists_every_module_surface():
    names = {(e["package"], e["name"]) for e in TestViscyModelsModuleSurfaces.entries()}
    assert ("viscy_models.components.blocks", "UNeXt2Decoder") in names
    assert ("viscy_models.foundation", "CellDinoModel") in names
    assert len({package for package, _ in names}) >= 15
