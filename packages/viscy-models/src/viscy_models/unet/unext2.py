"""UNeXt2: 3D-to-3D virtual staining with a 2D ConvNeXt encoder (timm) and a 2D decoder."""

from __future__ import annotations

from typing import Literal

import torch.nn as nn
from torch import Tensor

from viscy_models._pretrained import create_timm_model
from viscy_models.components.decoders import UNeXt2Decoder
from viscy_models.components.heads import PixelToVoxelHead, voxel_head_channels
from viscy_models.components.stems import UNeXt2Stem

__all__ = ["UNeXt2"]


def _check_yx(x: Tensor, multiple: int, name: str) -> None:
    if x.ndim != 5:
        raise ValueError(f"{name} expects (B, C, Z, Y, X) input, got shape {tuple(x.shape)}.")
    if x.shape[-1] % multiple or x.shape[-2] % multiple:
        raise ValueError(
            f"{name} needs Y and X to be multiples of {multiple}; got {tuple(x.shape[-2:])}. "
            "Crop or pad the input."
        )


class UNeXt2(nn.Module):
    """U-Net with a timm ConvNeXt (V2) encoder for 3D-to-3D image translation.

    The stem folds the depth of a ``(B, C, Z, Y, X)`` stack into channels, the 2D backbone
    encodes at 1/4 .. 1/32 resolution, a ConvNeXt V2 decoder upsamples with skips, and a
    pixel-to-voxel head restores ``out_stack_depth`` slices at full resolution.

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    in_stack_depth : int
        Input depth; must be a multiple of ``stem_kernel_size[0]``.
    out_stack_depth : int | None
        Output depth; defaults to ``in_stack_depth``.
    backbone : str
        timm ConvNeXt / ConvNeXt V2 model name (e.g. ``convnextv2_tiny``, ``convnextv2_atto``).
    pretrained : bool
        Load ImageNet weights for the backbone (needs network access or a filled cache).
    stem_kernel_size : tuple[int, int, int]
        ``(kz, ky, kx)``; Y/X must be 4 to match the backbone's stem.
    decoder_mode : {"deconv", "pixelshuffle"}
        Upsampling in the decoder. ``"deconv"`` is the 0.1.0 layout (transposed
        convolutions and residual units, see :class:`~viscy_models.components.UNeXt2UpStage`),
        which only fits when every stage's output plus skip width equals its input width
        (e.g. ``convnextv2_tiny`` with ``out_stack_depth=4``); other widths raise here
        (0.1.0 built them and failed at the first forward pass).
    decoder_conv_blocks : int
        ConvNeXt V2 blocks per ``pixelshuffle`` decoder stage (not used by ``deconv``).
    decoder_norm_layer : str
        Normalisation of the ``deconv`` residual units (the ConvNeXt blocks use layer norm).
    decoder_upsample_pre_conv : bool
        Learned convolution before each pixel shuffle.
    head_pool : bool
        Blur after the head's first pixel shuffle.
    head_expansion_ratio : int
        Width of the head's 3D convolution.
    drop_path_rate : float
        Stochastic depth of encoder and decoder blocks.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        in_stack_depth: int = 5,
        out_stack_depth: int | None = None,
        backbone: str = "convnextv2_tiny",
        pretrained: bool = False,
        stem_kernel_size: tuple[int, int, int] = (5, 4, 4),
        decoder_mode: Literal["deconv", "pixelshuffle"] = "pixelshuffle",
        decoder_conv_blocks: int = 2,
        decoder_norm_layer: str = "instance",
        decoder_upsample_pre_conv: bool = False,
        head_pool: bool = False,
        head_expansion_ratio: int = 4,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if in_stack_depth % stem_kernel_size[0]:
            raise ValueError(
                f"in_stack_depth={in_stack_depth} is not divisible by the stem depth kernel "
                f"stem_kernel_size[0]={stem_kernel_size[0]}. Use an in_stack_depth that is a "
                f"multiple of {stem_kernel_size[0]} or change stem_kernel_size."
            )
        out_stack_depth = in_stack_depth if out_stack_depth is None else out_stack_depth
        encoder = create_timm_model(
            backbone,
            pretrained=pretrained,
            features_only=True,
            drop_path_rate=drop_path_rate,
        )
        reductions = tuple(encoder.feature_info.reduction())
        if reductions != (4, 8, 16, 32):
            raise ValueError(
                f"UNeXt2 needs a backbone with features at strides (4, 8, 16, 32); "
                f"'{backbone}' has {reductions}. Use a ConvNeXt / ConvNeXt V2 backbone."
            )
        dims = list(encoder.feature_info.channels())
        # the 2D patchify convolution is replaced by the 3D stem below
        del encoder.stem_0
        self.encoder_stages = encoder
        self.stem = UNeXt2Stem(in_channels, dims[0], stem_kernel_size, in_stack_depth)
        head_in = voxel_head_channels(out_channels, out_stack_depth, head_expansion_ratio)
        self.decoder = UNeXt2Decoder(
            num_channels=[dims[-1], *dims[-2:0:-1], head_in],
            norm_name=decoder_norm_layer,
            mode=decoder_mode,
            conv_blocks=decoder_conv_blocks,
            strides=[2, 2, 2],
            upsample_pre_conv="default" if decoder_upsample_pre_conv else None,
            skip_channels=dims[-2::-1],
            drop_path_rate=drop_path_rate,
        )
        self.head = PixelToVoxelHead(
            head_in,
            out_channels,
            out_stack_depth,
            expansion_ratio=head_expansion_ratio,
            pool=head_pool,
        )
        self.in_stack_depth = in_stack_depth
        self.out_stack_depth = out_stack_depth
        self.decoder_norm_layer = decoder_norm_layer

    @property
    def num_blocks(self) -> int:
        """Number of 2x downsamplings between input and bottleneck (for input size checks)."""
        return 5

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, Z_in, Y, X) -> (B, C_out, Z_out, Y, X)``; Y and X multiples of 32."""
        _check_yx(x, 32, "UNeXt2")
        x = self.stem(x)
        features: list[Tensor] = self.encoder_stages(x)
        return self.head(self.decoder(features[::-1]))
