"""Cytoland: train, evaluate and apply virtual staining models.

Virtual staining predicts fluorescence images (nuclei, membranes) from label-free images
(phase, brightfield). Public names are imported lazily, so ``import cytoland`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "VSUNet": "engine",
    "FcmaeUNet": "engine",
    "ARCHITECTURES": "engine",
    "predict_sliding_window": "predict",
    "TTA_TRANSFORMS": "predict",
    "channel_metrics": "metrics",
    "pearson_r": "metrics",
    "ssim": "metrics",
    "psnr": "metrics",
}

__all__ = [
    "ARCHITECTURES",
    "TTA_TRANSFORMS",
    "FcmaeUNet",
    "VSUNet",
    "channel_metrics",
    "pearson_r",
    "predict_sliding_window",
    "psnr",
    "ssim",
]

if TYPE_CHECKING:
    from cytoland.engine import ARCHITECTURES, FcmaeUNet, VSUNet
    from cytoland.metrics import channel_metrics, pearson_r, psnr, ssim
    from cytoland.predict import TTA_TRANSFORMS, predict_sliding_window


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cytoland' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
