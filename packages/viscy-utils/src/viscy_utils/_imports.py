"""Lazy imports of optional dependencies, with the viscy-utils extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> (pip distribution, viscy-utils extra)
_OPTIONAL: dict[str, tuple[str, str]] = {
    "anndata": ("anndata", "anndata"),
    "sklearn": ("scikit-learn", "eval"),
    "matplotlib": ("matplotlib", "eval"),
    "umap": ("umap-learn", "eval"),
    "onnx": ("onnx", "export"),
    "onnxscript": ("onnxscript", "export"),
    "wandb": ("wandb", ""),
    "phate": ("phate", ""),
}


def optional_import(name: str, extra: str | None = None) -> ModuleType:
    """Import an optional dependency or raise an ImportError naming the extra.

    Parameters
    ----------
    name : str
        Module to import, e.g. ``"anndata"`` or ``"sklearn.linear_model"``.
    extra : str, optional
        The viscy-utils extra that installs it; looked up for known modules.

    Returns
    -------
    ModuleType
        The imported module.

    Raises
    ------
    ImportError
        If the module is not installed, with the ``pip install`` line that fixes it.
    """
    try:
        return importlib.import_module(name)
    except ImportError as err:
        top = name.split(".")[0]
        dist, known_extra = _OPTIONAL.get(top, (top, ""))
        extra = extra or known_extra
        hint = f"pip install 'viscy-utils[{extra}]'" if extra else f"pip install {dist}"
        raise ImportError(
            f"'{name}' is required for this feature but is not installed. Install it with: {hint}"
        ) from err
