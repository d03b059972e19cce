"""U-Net style 2D decoders: upsample, concatenate the skip feature, convolve."""

from __future__ import annotations

from collections import OrderedDict
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

__all__ = ["UNeXt2Decoder", "UNeXt2UpStage", "UnetDecoder", "UnetDecoderStage", "icnr_init"]

UpsampleMode = Literal["deconv", "pixelshuffle"]


def icnr_init(
    conv: nn.Module,
    upsample_factor: int,
    upsample_dims: int,
    init: Callable = nn.init.kaiming_normal_,
) -> None:
    """ICNR initialisation (Aitken et al., 2017) of a convolution followed by pixel shuffle.

    The weight is drawn (with ``init``) for ``out_channels / upsample_factor**upsample_dims``
    output channels, and each is repeated for the ``upsample_factor**upsample_dims``
    consecutive channels that one pixel shuffle gathers into one output channel; the
    upsampled result then starts as a nearest-neighbour upsampling, free of checkerboard
    artefacts. In place; the bias is left as it is.

    Parameters
    ----------
    conv : nn.Module
        A convolution (``weight`` of shape ``(out, in, *kernel)``).
    upsample_factor : int
        Pixel-shuffle factor.
    upsample_dims : int
        Number of upsampled spatial dimensions (2 for Y/X).
    init : Callable
        In-place initialiser of the sub-kernel.
    """
    weight = conv.weight
    group = upsample_factor**upsample_dims
    if weight.shape[0] % group:
        raise ValueError(
            f"icnr_init: {weight.shape[0]} output channels are not a multiple of "
            f"upsample_factor**upsample_dims = {group}."
        )
    sub = torch.empty(weight.shape[0] // group, *weight.shape[1:], dtype=weight.dtype)
    init(sub)
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(group, dim=0).to(weight.device))


def _residual_unit(in_channels: int, out_channels: int, norm_name: str) -> nn.Module:
    from monai.networks.blocks import ResidualUnit

    return ResidualUnit(
        spatial_dims=2, in_channels=in_channels, out_channels=out_channels, norm=norm_name
    )


def _upsample(
    in_channels: int,
    mode: UpsampleMode,
    pre_conv: Literal["default"] | Callable | None,
    scale: int = 2,
) -> nn.Module:
    """x``scale`` upsampling to ``in_channels // scale**2`` channels (parameter-free for plain
    pixelshuffle)."""
    if mode not in ("deconv", "pixelshuffle"):
        raise ValueError(f"upsampling mode must be 'deconv' or 'pixelshuffle', got {mode!r}.")
    if in_channels % scale**2:
        raise ValueError(
            f"Cannot upsample {in_channels} channels x{scale}: need a multiple of {scale**2}."
        )
    if mode == "pixelshuffle" and pre_conv is None:
        return PixelShuffleUpsample(scale)  # no MONAI import on the common path
    from monai.networks.blocks import UpSample

    return UpSample(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=in_channels // scale**2,
        scale_factor=scale,
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
        scale_factor: int = 2,
    ) -> None:
        super().__init__()
        if mode == "deconv":
            if block not in ("convnext", "residual"):
                raise ValueError(f"block must be 'convnext' or 'residual', got {block!r}.")
            if block == "convnext" and out_channels + skip_channels != in_channels:
                raise ValueError(
                    f"decoder_mode='deconv' stage {in_channels} -> {out_channels} channels "
                    f"with a {skip_channels}-channel skip: the 0.1.0 deconv layout needs "
                    f"out_channels + skip_channels == in_channels ({out_channels} + "
                    f"{skip_channels} != {in_channels}); 0.1.0 builds it but fails at the "
                    "first forward pass. Use decoder_mode='pixelshuffle' (or an "
                    "out_stack_depth whose head width fits)."
                )
            self._init_deconv_residual(
                in_channels, skip_channels, out_channels, scale_factor, norm_name
            )
            return
        self.upsample = _upsample(in_channels, mode, upsample_pre_conv, scale_factor)
        cat_channels = in_channels // scale_factor**2 + skip_channels
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
            if out_channels % 4 == 0:
                # the next stage pixel-shuffles this output: start it checkerboard-free
                icnr_init(self.conv.blocks[-1].mlp.fc2, 2, upsample_dims=2)
        elif block == "residual":
            self.conv = nn.Sequential(
                *(
                    _residual_unit(
                        cat_channels if i == 0 else out_channels, out_channels, norm_name
                    )
                    for i in range(conv_blocks)
                )
            )
        else:
            raise ValueError(f"block must be 'convnext' or 'residual', got {block!r}.")

    def _init_deconv_residual(
        self, in_channels: int, skip_channels: int, out_channels: int, scale: int, norm_name: str
    ) -> None:
        """The 0.1.0 ``deconv`` stage: a bias-free transposed convolution to
        ``out_channels``, then, on the concatenation with the skip, one MONAI residual unit
        and a 1x1 convolution to ``out_channels`` (``conv_blocks`` is not used)."""
        cat_channels = out_channels + skip_channels
        self.upsample = nn.Sequential(
            OrderedDict(
                conv=nn.ConvTranspose2d(in_channels, out_channels, scale, stride=scale, bias=False)
            )
        )
        self.conv = nn.Sequential(
            _residual_unit(cat_channels, cat_channels, norm_name),
            nn.Conv2d(cat_channels, out_channels, kernel_size=1),
        )

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


class UNeXt2UpStage(UnetDecoderStage):
    """One UNeXt2 decoder stage (the 0.1.0 signature): upsample ``inp`` by
    ``scale_factor``, concatenate ``skip``, convolve to ``out_channels``.

    ``mode="pixelshuffle"``: parameter-free pixel shuffle (or a 3x3 convolution first with
    ``upsample_pre_conv="default"``), then ``conv_blocks`` ConvNeXt V2 blocks.
    ``mode="deconv"``: the 0.1.0 layout, a bias-free transposed convolution, then a MONAI
    residual unit (``norm_name``) and a 1x1 convolution; it needs
    ``out_channels + skip_channels == in_channels`` (a clear error here, where 0.1.0 fails
    at the first forward pass).
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        scale_factor: int,
        mode: UpsampleMode,
        conv_blocks: int,
        norm_name: str,
        upsample_pre_conv: Literal["default"] | Callable | None,
        drop_path_rates: Sequence[float] | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            skip_channels,
            out_channels,
            mode=mode,
            conv_blocks=conv_blocks,
            block="convnext",
            norm_name=norm_name,
            upsample_pre_conv=upsample_pre_conv,
            drop_path_rates=drop_path_rates,
            scale_factor=scale_factor,
        )

    def forward(self, inp: Tensor, skip: Tensor) -> Tensor:
        return super().forward(inp, skip)


class UNeXt2Decoder(nn.Module):
    """UNeXt2 decoder (the 0.1.0 signature): a chain of :class:`UNeXt2UpStage`.

    Stage ``i`` upsamples ``num_channels[i]`` channels by ``strides[i]``, concatenates a
    skip feature of ``num_channels[i] // 2`` channels (0.1.0; the halving of ConvNeXt
    encoders) unless ``skip_channels`` says otherwise, and outputs ``num_channels[i + 1]``.

    Parameters
    ----------
    num_channels : list[int]
        Channels of the coarsest feature, then each stage's output channels.
    norm_name : str
        Normalisation of the ``deconv`` residual units.
    mode : {"deconv", "pixelshuffle"}
        Upsampling.
    conv_blocks : int
        ConvNeXt V2 blocks per ``pixelshuffle`` stage.
    strides : list[int]
        Upsampling factor of each stage.
    upsample_pre_conv : "default" | Callable | None
        Convolution before each pixel shuffle.
    skip_channels : list[int] | None
        Skip channels per stage (default: ``num_channels[i] // 2``).
    drop_path_rate : float
        Stochastic depth of the ConvNeXt blocks (rising linearly over all of them).
    """

    def __init__(
        self,
        num_channels: list[int],
        norm_name: str,
        mode: UpsampleMode,
        conv_blocks: int,
        strides: list[int],
        upsample_pre_conv: Literal["default"] | Callable | None,
        skip_channels: list[int] | None = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        n_stages = len(num_channels) - 1
        if len(strides) != n_stages:
            raise ValueError(
                f"{n_stages} decoder stages (num_channels={list(num_channels)}) need as many "
                f"strides, got {list(strides)}."
            )
        if skip_channels is None:
            skip_channels = [c // 2 for c in num_channels[:-1]]
        if len(skip_channels) != n_stages:
            raise ValueError(
                f"{n_stages} decoder stages need as many skip channel counts, "
                f"got {list(skip_channels)}."
            )
        rates = linear_rates(drop_path_rate, n_stages * conv_blocks) if drop_path_rate else None
        self.decoder_stages = nn.ModuleList(
            UNeXt2UpStage(
                num_channels[i],
                skip_channels[i],
                num_channels[i + 1],
                scale_factor=strides[i],
                mode=mode,
                conv_blocks=conv_blocks,
                norm_name=norm_name,
                upsample_pre_conv=upsample_pre_conv,
                drop_path_rates=rates[i * conv_blocks : (i + 1) * conv_blocks] if rates else None,
            )
            for i in range(n_stages)
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """``features``: the coarsest first, then one skip feature per stage."""
        if len(features) != len(self.decoder_stages) + 1:
            raise ValueError(
                f"UNeXt2Decoder with {len(self.decoder_stages)} stages needs "
                f"{len(self.decoder_stages) + 1} features (coarsest first), got {len(features)}."
            )
        x = features[0]
        for stage, skip in zip(self.decoder_stages, features[1:], strict=True):
            x = stage(x, skip)
        return x
