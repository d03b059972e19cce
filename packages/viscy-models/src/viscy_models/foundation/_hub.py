"""Loading Hugging Face models for the foundation wrappers, with clear errors."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from viscy_models._pretrained import PretrainedWeightsUnavailableError


def _transformers(model_name: str):
    try:
        import transformers
    except ImportError as err:
        raise ImportError(
            f"Loading '{model_name}' needs the 'transformers' package: "
            "pip install 'viscy-models[foundation]'"
        ) from err
    return transformers


def load_hf_model(model_name: str, **kwargs: Any) -> nn.Module:
    """``transformers.AutoModel.from_pretrained`` with actionable errors."""
    return _from_pretrained(_transformers(model_name).AutoModel, model_name, **kwargs)


def load_hf_image_processor(model_name: str, **kwargs: Any) -> Any:
    """``transformers.AutoImageProcessor.from_pretrained`` with actionable errors."""
    auto = _transformers(model_name).AutoImageProcessor
    return _from_pretrained(auto, model_name, **kwargs)


def _from_pretrained(auto: Any, model_name: str, **kwargs: Any) -> Any:
    try:
        return auto.from_pretrained(model_name, **kwargs)
    except (OSError, ValueError, ConnectionError) as err:
        raise PretrainedWeightsUnavailableError(
            f"Could not fetch weights for '{model_name}' from the Hugging Face hub: "
            f"{type(err).__name__}: {err}. Without network access, download the model on a "
            "connected machine (huggingface-cli download ...) and copy the HF_HOME cache here, "
            "or pass a local directory as model_name. Gated models also need `hf auth login`."
        ) from err
