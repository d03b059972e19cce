"""Beta-VAE built on MONAI's ``VarAutoEncoder``."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, Literal

import torch.nn as nn
from torch import Tensor

__all__ = ["BetaVaeMonai"]


class BetaVaeMonai(nn.Module):
    """MONAI ``VarAutoEncoder`` returning a namespace like :class:`BetaVae25D`.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_shape : Sequence[int]
        ``(C, *spatial)`` of one input sample.
    out_channels : int
        Reconstructed channels.
    latent_size : int
        Latent dimension.
    channels : Sequence[int]
        Channels of the encoder levels.
    strides : Sequence[int] | Sequence[Sequence[int]]
        Stride of each encoder level.
    kernel_size, up_kernel_size : Sequence[int] | int
        Convolution kernels.
    num_res_units : int
        Residual units per level (0: plain convolutions).
    use_sigmoid : bool
        Sigmoid on the reconstruction.
    norm : {"batch", "instance"}
        Normalisation.
    **kwargs
        Passed to ``monai.networks.nets.VarAutoEncoder``.

    Notes
    -----
    ``forward`` returns ``SimpleNamespace(recon_x, mean, logvar, z)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_shape: Sequence[int],
        out_channels: int,
        latent_size: int,
        channels: Sequence[int],
        strides: Sequence[int] | Sequence[Sequence[int]],
        kernel_size: Sequence[int] | int = 3,
        up_kernel_size: Sequence[int] | int = 3,
        num_res_units: int = 0,
        use_sigmoid: bool = False,
        norm: Literal["batch", "instance"] = "instance",
        **kwargs: Any,
    ) -> None:
        super().__init__()
        from monai.networks.nets import VarAutoEncoder

        if len(in_shape) != spatial_dims + 1:
            raise ValueError(
                f"in_shape {tuple(in_shape)} must be (C, *spatial) with {spatial_dims} spatial "
                "dimensions."
            )
        if len(channels) != len(strides):
            raise ValueError(
                f"channels {tuple(channels)} and strides {tuple(strides)} need the same length."
            )
        self.model = VarAutoEncoder(
            spatial_dims=spatial_dims,
            in_shape=tuple(in_shape),
            out_channels=out_channels,
            latent_size=latent_size,
            channels=tuple(channels),
            strides=tuple(strides),
            kernel_size=kernel_size,
            up_kernel_size=up_kernel_size,
            num_res_units=num_res_units,
            use_sigmoid=use_sigmoid,
            norm=norm,
            **kwargs,
        )

    def forward(self, x: Tensor) -> SimpleNamespace:
        recon_x, mean, logvar, z = self.model(x)
        return SimpleNamespace(recon_x=recon_x, mean=mean, logvar=logvar, z=z)
