"""DynaCLR: contrastive learning of cell dynamics from time-lapse microscopy.

Public names are exported flat and imported lazily (PEP 562), so ``import dynaclr``
(and the ``dynaclr --help`` command) stays fast and pulls in neither torch nor
Lightning until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ContrastiveModule": "dynaclr.engine",
    "render_triplet_grid": "dynaclr.engine",
    "NTXentLoss": "viscy_models.contrastive.loss",
    "NTXentHCL": "viscy_models.contrastive.loss",
    "TinyEncoder": "dynaclr.tiny_encoder",
    "TinyContrastiveEncoder": "dynaclr.tiny_encoder",
    "ClassificationModule": "dynaclr.classification",
    "MultiModalContrastiveModule": "dynaclr.multi_modal",
    "cross_modal_nt_xent": "dynaclr.multi_modal",
    "load_encoder_weights": "dynaclr._checkpoint",
    "run_demo": "dynaclr.demo",
    # multi-experiment sampling framework
    "ExperimentConfig": "dynaclr.experiment",
    "ExperimentRegistry": "dynaclr.experiment",
    "MultiExperimentIndex": "dynaclr.index",
    "MultiExperimentTripletDataset": "dynaclr.dataset",
    "MultiExperimentDataModule": "dynaclr.datamodule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'dynaclr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers see the real names
    from dynaclr._checkpoint import load_encoder_weights  # noqa: F401
    from dynaclr.classification import ClassificationModule  # noqa: F401
    from dynaclr.engine import ContrastiveModule, render_triplet_grid  # noqa: F401
    from dynaclr.multi_modal import MultiModalContrastiveModule, cross_modal_nt_xent  # noqa: F401
    from dynaclr.tiny_encoder import TinyContrastiveEncoder, TinyEncoder  # noqa: F401
    from viscy_models.contrastive.loss import NTXentHCL, NTXentLoss  # noqa: F401
