"""Helpers shared by the sections; importable in both environments (needs only torch)."""

from __future__ import annotations

import importlib
from typing import Any

import torch


def resolve(path: str) -> Any:
    """``"pkg.mod.Name"`` -> the object."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def to_plain(value: Any) -> Any:
    """Outputs as nested lists/dicts of tensors, so they pickle across environments."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if hasattr(value, "__dict__") and not isinstance(value, type):
        fields = {k: to_plain(v) for k, v in vars(value).items()}
        return {"__type__": type(value).__name__, **fields}
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)


def structure(value: Any) -> Any:
    """Shape-only summary of :func:`to_plain` output: tensors become ``"T(shape,dtype)"``."""
    if isinstance(value, torch.Tensor):
        return f"T{tuple(value.shape)}:{str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, list):
        return [structure(v) for v in value]
    if isinstance(value, dict):
        return {k: structure(v) for k, v in value.items() if k != "__type__"}
    return value


def max_abs_diff(a: Any, b: Any) -> float | None:
    """Largest absolute difference over matching tensors; None if the structures differ."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape:
            return None
        if a.numel() == 0:
            return 0.0
        if a.dtype == torch.bool or b.dtype == torch.bool:
            return float((a != b).sum())
        return float((a.double() - b.double()).abs().max())
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return None
        diffs = [max_abs_diff(x, y) for x, y in zip(a, b, strict=True)]
        return None if None in diffs else max(diffs, default=0.0)
    if isinstance(a, dict) and isinstance(b, dict):
        ka = {k for k in a if k != "__type__"}
        kb = {k for k in b if k != "__type__"}
        if ka != kb:
            return None
        diffs = [max_abs_diff(a[k], b[k]) for k in sorted(ka)]
        return None if None in diffs else max(diffs, default=0.0)
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b)
    return 0.0 if a == b else None


def error_name(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
