"""Wrappers of pretrained foundation models (Hugging Face hub models, local CELL-DINO weights)."""

from typing import TYPE_CHECKING

from viscy_models._lazy import lazy_exports

_EXPORTS = {
    "CellDinoModel": "viscy_models.foundation.cell_dino",
    "DINOv3Model": "viscy_models.foundation.dinov3",
    "OpenPhenomModel": "viscy_models.foundation.openphenom",
}
__all__ = ["CellDinoModel", "DINOv3Model", "OpenPhenomModel"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from viscy_models.foundation.cell_dino import CellDinoModel
    from viscy_models.foundation.dinov3 import DINOv3Model
    from viscy_models.foundation.openphenom import OpenPhenomModel
