"""Optional dependencies of dynaclr, checked by the extra that installs them."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

__all__ = ["EXTRAS", "MissingExtraError", "require_extra"]

#: extra -> the modules it provides (distribution names differ: sklearn = scikit-learn)
EXTRAS: dict[str, tuple[str, ...]] = {
    "eval": ("anndata", "sklearn", "umap", "matplotlib"),
    "export": ("onnx", "onnxscript", "onnxruntime"),
    "wandb": ("wandb",),
}


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the dynaclr extra."""


def require_extra(extra: str, modules: Sequence[str] | None = None, feature: str = "") -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` can be imported.

    Parameters
    ----------
    extra : str
        A key of :data:`EXTRAS` (``"eval"``, ``"export"``, ``"wandb"``).
    modules : sequence of str, optional
        The modules actually needed; all of the extra's when None.
    feature : str
        What needs them, for the message (e.g. ``"dynaclr demo"``).
    """
    if extra not in EXTRAS:
        raise ValueError(f"Unknown dynaclr extra {extra!r}; known: {sorted(EXTRAS)}")
    wanted = EXTRAS[extra] if modules is None else tuple(modules)
    missing = [m for m in wanted if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        what = feature or "this feature"
        raise MissingExtraError(
            f"{what} needs {', '.join(missing)}, which is not installed. Install it with: "
            f"pip install 'dynaclr[{extra}]'"
        )
