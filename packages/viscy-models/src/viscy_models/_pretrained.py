"""Build backbones, turning a failed weight download into one clear error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch.nn as nn

_M = TypeVar("_M", bound=nn.Module)


class PretrainedWeightsUnavailableError(RuntimeError):
    """Pretrained weights were requested but could not be fetched (usually: no network)."""


def _raise_unavailable(source: str, name: str, err: BaseException) -> None:
    raise PretrainedWeightsUnavailableError(
        f"Could not fetch pretrained weights for {source} backbone '{name}': "
        f"{type(err).__name__}: {err}. This usually means there is no network access. "
        "Either pass pretrained=False (random initialisation), or download the weights on a "
        "machine with network access into the Hugging Face / torch hub cache "
        "(HF_HOME, TORCH_HOME) and copy that cache here."
    ) from err


def build_with_weights(source: str, name: str, pretrained: bool, build: Callable[[], _M]) -> _M:
    """Call ``build()``; if it fails while ``pretrained`` is set, raise a clear error."""
    if not pretrained:
        return build()
    try:
        return build()
    except (KeyboardInterrupt, MemoryError, ValueError, TypeError):
        raise  # configuration errors are reported as they are
    except Exception as err:  # download errors come from many libraries (hub, urllib, ssl)
        _raise_unavailable(source, name, err)
        raise  # unreachable; keeps type checkers happy


def create_timm_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with a clear error when pretrained weights are unavailable."""
    import timm

    if name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        raise ValueError(
            f"Unknown timm backbone '{name}'. Examples: convnext_tiny, convnextv2_tiny, "
            "convnextv2_atto, resnet50."
        )
    return build_with_weights(
        "timm", name, pretrained, lambda: timm.create_model(name, pretrained=pretrained, **kwargs)
    )
