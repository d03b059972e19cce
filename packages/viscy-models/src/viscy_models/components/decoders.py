"""U-Net style 2D decoders: upsample, concatenate the skip feature, convolve."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

import torch
import torch.nn as nn
from timm.layers import LayerNorm, LayerNorm2d
from timm.models.convnext import ConvNeXtStage
from torch import Tensor

from viscy_models.components.blocks import linear_rates
from viscy_models.components.heads import PixelShuffleUpsample

__all__ = ["UnetDecoder", "UnetDecoderStage"]

UpsampleMode = Literal["deconv", "pixelshuffle"]


def _upsample(
    in_channels: int,
    mode: UpsampleMode,
    pre_conv: Literal["default"] | Callable | None,
) -> nn.Module:
    """x2 upsampling to ``in_channels // 4`` channels (parameter-free for plain pixelshuffle)."""
    if mode not in ("deconv", "pixelshuffle"):
        raise ValueError(f"upsampling mode must be 'deconv' or 'pixelshuffle', got {mode!r}.")
    if in_channels % 4:
        raise ValueError(f"Cannot upsample {in_channels} channels: need a multiple of 4.")
    if mode == "pixelshuffle" and pre_conv is None:
        return PixelShuffleUpsample(2)  # no MONAI import on the common path
    from monai.networks.blocks import UpSample

    return UpSample(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=in_channels // 4,
        scale_factor=2,
        mode=mode,
        pre_conv=pre_conv if mode == "pixelshuffle" else "default",
        apply_pad_pool=False,
    )


class UnetDecoderStage(nn.Module):
    """One decoder stage: ``upsample`` then ``conv`` on ``cat(upsampled, skip)``.

    Parameters
    ----------
    in_channels : int
        Channels coming from the previous (coarser) stage.
    skip_channels : int
        Channels of the skip feature (0 for no skip).
    out_channels : int
        Output channels.
    mode : {"deconv", "pixelshuffle"}
        Upsampling.
    conv_blocks : int
        Number of convolution blocks.
    block : {"convnext", "residual"}
        ConvNeXt V2 blocks (UNeXt2, FCMAE) or MONAI residual units (VAE).
    norm_name : {"batch", "instance"}
        Normalisation of residual units.
    upsample_pre_conv : "default" | Callable | None
        Convolution before pixel shuffle (None: parameter-free).
    drop_path_rates : Sequence[float] | None
        Stochastic depth per ConvNeXt block.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        mode: UpsampleMode = "pixelshuffle",
        conv_blocks: int = 2,
        block: Literal["convnext", "residual"] = "convnext",
        norm_name: Literal["batch", "instance"] = "instance",
        upsample_pre_conv: Literal["default"] | Callable | None = None,
        drop_path_rates: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.upsample = _upsample(in_channels, mode, upsample_pre_conv)
        cat_channels = in_channels // 4 + skip_channels
        if block == "convnext":
            self.conv = ConvNeXtStage(
                cat_channels,
                out_channels,
                stride=1,
                depth=conv_blocks,
                drop_path_rates=list(drop_path_rates) if drop_path_rates else None,
                ls_init_value=None,
                conv_mlp=True,
                use_grn=True,
                norm_layer=partial(LayerNorm2d, eps=1e-6),
                norm_layer_cl=partial(LayerNorm, eps=1e-6),
            )
        elif block == "residual":
            from monai.networks.blocks import ResidualUnit

            self.conv = nn.Sequential(
                *(
                    ResidualUnit(
                        spatial_dims=2,
                        in_channels=cat_channels if i == 0 else out_channels,
                        out_channels=out_channels,
                        norm=norm_name,
                    )
                    for i in range(conv_blocks)
                )
            )
        else:
            raise ValueError(f"block must be 'convnext' or 'residual', got {block!r}.")

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = self.upsample(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


class UnetDecoder(nn.Module):
    """Chain of :class:`UnetDecoderStage`, coarsest first.

    Parameters
    ----------
    num_channels : Sequence[int]
        Channels of the coarsest feature followed by each stage's output channels.
    skip_channels : Sequence[int]
        Skip channels of each stage (0: no skip); same length as ``num_channels[1:]``.
    **stage_kwargs
        Passed to every :class:`UnetDecoderStage`.
    """

    def __init__(
        self,
        num_channels: Sequence[int],
        skip_channels: Sequence[int],
        mode: UpsampleMode = "pixelshuffle",
        conv_blocks: int = 2,
        block: Literal["convnext", "residual"] = "convnext",
        norm_name: Literal["batch", "instance"] = "instance",
        upsample_pre_conv: Literal["default"] | Callable | None = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(skip_channels) != len(num_channels) - 1:
            raise ValueError(
                f"{len(num_channels) - 1} decoder stages need as many skip channel counts, "
                f"got {len(skip_channels)}."
            )
        n_blocks = (len(num_channels) - 1) * conv_blocks
        rates = linear_rates(drop_path_rate, n_blocks) if drop_path_rate else None
        self.decoder_stages = nn.ModuleList(
            UnetDecoderStage(
                num_channels[i],
                skip_channels[i],
                num_channels[i + 1],
                mode=mode,
                conv_blocks=conv_blocks,
                block=block,
                norm_name=norm_name,
                upsample_pre_conv=upsample_pre_conv,
                drop_path_rates=rates[i * conv_blocks : (i + 1) * conv_blocks] if rates else None,
            )
            for i in range(len(num_channels) - 1)
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """``features``: coarsest first, then the skip of each stage (may be fewer)."""
        x = features[0]
        for i, stage in enumerate(self.decoder_stages):
            skip = features[i + 1] if i + 1 < len(features) else None
            x = stage(x, skip)
        return x
