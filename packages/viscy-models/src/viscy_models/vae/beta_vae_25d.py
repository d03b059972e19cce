"""Beta-VAE for 2.5D stacks: 3D stem + timm 2D encoder, residual 2D decoder, voxel head."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Literal

import torch
import torch.nn as nn
from torch import Tensor

from viscy_models._pretrained import create_timm_model
from viscy_models.components.decoders import UnetDecoder
from viscy_models.components.heads import PixelToVoxelHead, voxel_head_channels
from viscy_models.components.stems import StemDepthtoChannels

__all__ = ["BetaVae25D", "VaeDecoder", "VaeEncoder"]


class VaeEncoder(nn.Module):
    """Stem + backbone feature map, flattened into a latent mean and log-variance."""

    def __init__(
        self,
        backbone: Literal["resnet50", "convnext_tiny"],
        in_channels: int,
        in_stack_depth: int,
        latent_dim: int,
        input_spatial_size: tuple[int, int],
        stem_kernel_size: tuple[int, int, int],
        stem_stride: tuple[int, int, int],
        drop_path_rate: float,
    ) -> None:
        super().__init__()
        if backbone.startswith("resnet"):
            encoder = create_timm_model(
                backbone, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate
            )
            reduction = encoder.feature_info[-1]["reduction"]
            first = encoder.conv1
            encoder.conv1 = nn.Identity()
            self._features_only = False
        elif backbone.startswith("convnext"):
            # a timm feature extractor (module names stem_1, stages_0, ...), as in 0.1.0
            encoder = create_timm_model(
                backbone, pretrained=False, features_only=True, drop_path_rate=drop_path_rate
            )
            reduction = encoder.feature_info.reduction()[-1]
            first = encoder.stem_0
            encoder.stem_0 = nn.Identity()
            self._features_only = True
        else:
            raise ValueError(f"backbone must be 'resnet50' or 'convnext_tiny', got {backbone!r}.")
        if stem_stride[1] != stem_stride[2]:
            raise ValueError(f"stem_stride Y and X must match, got {tuple(stem_stride)}.")
        self.total_stride = reduction // first.stride[0] * stem_stride[-1]
        size = tuple(int(s) for s in input_spatial_size)
        if size[0] % self.total_stride or size[1] % self.total_stride:
            raise ValueError(
                f"input_spatial_size={size} must be a multiple of the encoder's total stride "
                f"{self.total_stride} ({backbone} with stem stride {stem_stride[-1]})."
            )
        self.feature_size = (size[0] // self.total_stride, size[1] // self.total_stride)
        self.feature_channels = (
            encoder.feature_info.channels()[-1] if self._features_only else encoder.num_features
        )
        self.stem = StemDepthtoChannels(
            in_channels,
            in_stack_depth,
            first.out_channels,
            stem_kernel_size=stem_kernel_size,
            stem_stride=stem_stride,
            backbone_name=backbone,
        )
        self.encoder = encoder
        flat = self.feature_channels * self.feature_size[0] * self.feature_size[1]
        self.fc = nn.Linear(flat, latent_dim)
        self.fc_mu = nn.Linear(latent_dim, latent_dim)
        self.fc_logvar = nn.Linear(latent_dim, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.stem(x)
        x = self.encoder(x)[-1] if self._features_only else self.encoder.forward_features(x)
        x = x.flatten(1)
        x = self.fc(x)
        return self.fc_mu(x), self.fc_logvar(x)


class VaeDecoder(nn.Module):
    """Latent vector -> feature map -> residual upsampling stages -> voxel head."""

    def __init__(
        self,
        latent_dim: int,
        feature_channels: int,
        feature_size: tuple[int, int],
        out_channels: int,
        out_stack_depth: int,
        decoder_stages: int,
        head_expansion_ratio: int,
        head_pool: bool,
        upsample_mode: Literal["deconv", "pixelshuffle"],
        conv_blocks: int,
        norm_name: Literal["batch", "instance"],
        upsample_pre_conv: Literal["default"] | Callable | None,
    ) -> None:
        super().__init__()
        area = feature_size[0] * feature_size[1]
        if latent_dim % area:
            raise ValueError(
                f"latent_dim={latent_dim} must be divisible by the latent map area {area} "
                f"({feature_size[0]}x{feature_size[1]}); change latent_dim or input_spatial_size."
            )
        self.feature_size = feature_size
        self.latent_reshape = nn.Linear(latent_dim, latent_dim)
        self.latent_proj = nn.Conv2d(latent_dim // area, feature_channels, kernel_size=1)
        head_in = voxel_head_channels(out_channels, out_stack_depth, head_expansion_ratio)
        channels = [feature_channels]
        channels += [feature_channels // 2 ** (i + 1) for i in range(decoder_stages - 1)]
        channels.append(head_in)
        self.decoder_stages = UnetDecoder(
            num_channels=channels,
            skip_channels=[0] * decoder_stages,
            mode=upsample_mode,
            conv_blocks=conv_blocks,
            block="residual",
            norm_name=norm_name,
            upsample_pre_conv=upsample_pre_conv,
        ).decoder_stages
        self.head = PixelToVoxelHead(
            head_in, out_channels, out_stack_depth, head_expansion_ratio, pool=head_pool
        )

    def forward(self, z: Tensor) -> Tensor:
        x = self.latent_reshape(z)
        x = x.reshape(z.shape[0], -1, *self.feature_size)
        x = self.latent_proj(x)
        for stage in self.decoder_stages:
            x = stage(x)
        return self.head(x)


class BetaVae25D(nn.Module):
    """Beta-VAE reconstructing ``(B, C, Z, Y, X)`` stacks through a ``latent_dim`` vector.

    Parameters
    ----------
    backbone : {"resnet50", "convnext_tiny"}
        timm encoder backbone (randomly initialised).
    in_channels : int
        Channels (also reconstructed).
    in_stack_depth, out_stack_depth : int
        Input and reconstructed depth.
    latent_dim : int
        Latent dimension.
    input_spatial_size : tuple[int, int]
        Y/X size of the input (fixes the encoder's flatten size).
    stem_kernel_size, stem_stride : tuple[int, int, int]
        Stem convolution.
    drop_path_rate : float
        Stochastic depth of the encoder.
    decoder_stages : int
        x2 upsampling stages; must bring the latent map back to ``input_spatial_size / 4``.
    head_expansion_ratio : int
        Width of the head's 3D convolution.
    head_pool : bool
        Blur in the head.
    upsample_mode : {"deconv", "pixelshuffle"}
        Decoder upsampling.
    conv_blocks : int
        Residual units per decoder stage.
    norm_name : {"batch", "instance"}
        Normalisation of the residual units.
    upsample_pre_conv : "default" | Callable | None
        Convolution before pixel shuffle (None: parameter-free).

    Notes
    -----
    ``forward`` returns ``SimpleNamespace(recon_x, mean, logvar, z)``; ``z`` is sampled
    (``mean + eps * exp(logvar / 2)``) in training and eval mode alike, as in 0.1.0.
    """

    def __init__(
        self,
        backbone: Literal["resnet50", "convnext_tiny"] = "resnet50",
        in_channels: int = 2,
        in_stack_depth: int = 16,
        out_stack_depth: int = 16,
        latent_dim: int = 1024,
        input_spatial_size: tuple[int, int] = (256, 256),
        stem_kernel_size: tuple[int, int, int] = (2, 4, 4),
        stem_stride: tuple[int, int, int] = (2, 4, 4),
        drop_path_rate: float = 0.0,
        decoder_stages: int = 4,
        head_expansion_ratio: int = 2,
        head_pool: bool = False,
        upsample_mode: Literal["deconv", "pixelshuffle"] = "pixelshuffle",
        conv_blocks: int = 2,
        norm_name: Literal["batch", "instance"] = "batch",
        upsample_pre_conv: Literal["default"] | Callable | None = None,
    ) -> None:
        super().__init__()
        self.encoder = VaeEncoder(
            backbone,
            in_channels,
            in_stack_depth,
            latent_dim,
            input_spatial_size,
            stem_kernel_size,
            stem_stride,
            drop_path_rate,
        )
        needed = self.encoder.total_stride // 4
        if 2**decoder_stages != needed:
            raise ValueError(
                f"decoder_stages={decoder_stages} upsamples by {2**decoder_stages}, but "
                f"{backbone} with stem stride {stem_stride[-1]} downsamples by "
                f"{self.encoder.total_stride} (the head adds x4): set decoder_stages="
                f"{needed.bit_length() - 1}."
            )
        self.decoder = VaeDecoder(
            latent_dim,
            self.encoder.feature_channels,
            self.encoder.feature_size,
            in_channels,
            out_stack_depth,
            decoder_stages,
            head_expansion_ratio,
            head_pool,
            upsample_mode,
            conv_blocks,
            norm_name,
            upsample_pre_conv,
        )
        self.input_spatial_size = tuple(input_spatial_size)

    def forward(self, x: Tensor) -> SimpleNamespace:
        if tuple(x.shape[-2:]) != self.input_spatial_size:
            raise ValueError(
                f"BetaVae25D was built for input_spatial_size={self.input_spatial_size}, "
                f"got Y/X {tuple(x.shape[-2:])}."
            )
        mean, logvar = self.encoder(x)
        # 0.1.0 samples in eval mode too (seed torch for reproducible reconstructions)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        return SimpleNamespace(recon_x=self.decoder(z), mean=mean, logvar=logvar, z=z)
