"""Load a pretrained encoder's weights out of a Lightning checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["freeze_module", "load_encoder_weights"]


def load_encoder_weights(
    encoder: nn.Module, ckpt_path: str | Path, prefix: str = "model."
) -> nn.Module:
    """Copy the weights under ``prefix`` of a checkpoint into ``encoder`` (strictly).

    Parameters
    ----------
    encoder : nn.Module
        The encoder to fill, built with the same architecture as the checkpoint's.
    ckpt_path : str or Path
        A Lightning checkpoint (``{"state_dict": ...}``) or a bare state dict. A
        ``ContrastiveModule`` stores its encoder under ``model.``.
    prefix : str
        Key prefix of the encoder in the checkpoint's state dict; ``""`` for a bare
        encoder state dict.

    Returns
    -------
    nn.Module
        ``encoder``.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"Encoder checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict (got {type(checkpoint).__name__})")
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        prefixes = sorted({k.split(".", 1)[0] + "." for k in state})
        raise ValueError(
            f"{path} has no weights under prefix {prefix!r}; its top-level prefixes are "
            f"{prefixes[:8]}"
        )
    own = encoder.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    reshaped = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in weights and tuple(weights[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or reshaped:
        raise ValueError(
            f"The encoder does not match the weights under {prefix!r} in {path}: missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}, other shapes (checkpoint vs encoder) "
            f"{reshaped[:3]}; build the encoder with the checkpoint's architecture"
        )
    encoder.load_state_dict(weights)
    return encoder


def freeze_module(module: nn.Module) -> None:
    """Stop gradients through ``module`` and keep it in eval mode (normalization stats fixed)."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    module.eval()
