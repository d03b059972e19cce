"""Loading Hugging Face models for the foundation wrappers, with clear errors."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from viscy_models._pretrained import PretrainedWeightsUnavailableError


def load_hf_model(model_name: str, **kwargs: Any) -> nn.Module:
    """``transformers.AutoModel.from_pretrained`` with actionable errors."""
    try:
        from transformers import AutoModel
    except ImportError as err:
        raise ImportError(
            f"Loading '{model_name}' needs the 'transformers' package: pip install transformers"
        ) from err
    try:
        return AutoModel.from_pretrained(model_name, **kwargs)
    except (OSError, ValueError, ConnectionError) as err:
        raise PretrainedWeightsUnavailableError(
            f"Could not fetch weights for '{model_name}' from the Hugging Face hub: "
            f"{type(err).__name__}: {err}. Without network access, download the model on a "
            "connected machine (huggingface-cli download ...) and copy the HF_HOME cache here, "
            "or pass a local directory as model_name. Gated models also need `hf auth login`."
        ) from err
