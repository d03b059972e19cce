"""Lazy imports of optional dependencies, with the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> (pip distribution, viscy-data extra)
_OPTIONAL: dict[str, tuple[str, str]] = {
    "tensorstore": ("tensorstore", "triplet"),
    "tensordict": ("tensordict", "mmap"),
    "pycocotools": ("pycocotools", "livecell"),
    "pycocotools.coco": ("pycocotools", "livecell"),
    "tifffile": ("tifffile", "livecell"),
    "torchvision": ("torchvision", "livecell"),
    "pyarrow": ("pyarrow", "cellindex"),
    "pyarrow.parquet": ("pyarrow", "cellindex"),
}


def optional_import(name: str, extra: str | None = None, package: str = "viscy-data") -> ModuleType:
    """Import an optional dependency or raise an ImportError naming the extra.

    Parameters
    ----------
    name : str
        Module to import, e.g. ``"tensorstore"``.
    extra : str, optional
        The extra of ``package`` that installs it; looked up for known modules.
    package : str
        The distribution whose extra provides the module.

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
        dist, known_extra = _OPTIONAL.get(name, (name.split(".")[0], None))
        extra = extra or known_extra
        hint = f"pip install '{package}[{extra}]'" if extra else f"pip install {dist}"
        raise ImportError(
            f"'{name}' is required for this feature but is not installed. Install it with: {hint}"
        ) from err
