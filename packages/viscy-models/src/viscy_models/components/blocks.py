"""Convolution blocks shared by the U-Nets and the decoders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ConvBlock2D",
    "ConvBlock3D",
    "UNeXt2Decoder",
    "UNeXt2UpStage",
    "icnr_init",
    "linear_rates",
]

if TYPE_CHECKING:
    from viscy_models.components.decoders import UNeXt2Decoder, UNeXt2UpStage, icnr_init

# defined beside the other decoder stages (which import this module); the 0.1.0 path is here
_FROM_DECODERS = ("UNeXt2Decoder", "UNeXt2UpStage", "icnr_init")


def __getattr__(name: str):
    if name in _FROM_DECODERS:
        from viscy_models.components import decoders

        return getattr(decoders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_FROM_DECODERS])


def linear_rates(max_rate: float, n: int) -> list[float]:
    """Stochastic-depth rates rising linearly from 0 to ``max_rate`` over ``n`` blocks."""
    return [max_rate * i / max(n - 1, 1) for i in range(n)]


_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


class _ConvBlock(nn.Module):
    """``num_repeats`` convolution layers, each a permutation of conv / activation / norm.

    ``layer_order`` spells the order per layer with ``c`` (convolution), ``a`` (activation)
    and ``n`` (normalization); the default ``"can"`` is conv -> activation -> norm. With
    ``residual`` the input is added to the output: as is when the width does not change,
    zero-padded in front along channels when the block widens, and through the 1x1
    ``resid_conv`` when it narrows (the 1x1 convolution always exists: checkpoints carry
    it). ``filter_steps`` says where the
    channel count changes: at the ``"first"`` or ``"last"`` layer, or ``"linear"``ly over
    all of them. ``dropout`` (a rate; False or 0: none) follows every convolution.

    Attribute names (``batch_norm_i``, ``Conv{2,3}d_i``, ``{act}_act_i``, ``resid_conv``)
    are the 0.1.0 checkpoint format of :class:`~viscy_models.Unet2d` and
    :class:`~viscy_models.Unet25d`.
    """

    _ndim: int

    def __init__(
        self,
        in_filters: int,
        out_filters: int,
        dropout: float | bool = False,
        norm: Literal["batch", "instance"] | None = "batch",
        residual: bool = True,
        activation: str = "relu",
        transpose: bool = False,
        kernel_size: int | Sequence[int] = 3,
        num_repeats: int = 3,
        filter_steps: Literal["first", "last", "linear"] = "first",
        layer_order: str = "can",
        padding: int | Sequence[int] | str | None = None,
    ) -> None:
        super().__init__()
        ndim = self._ndim
        ks = (kernel_size,) * ndim if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(ks) != ndim:
            raise ValueError(f"kernel_size {ks} must have {ndim} entries.")
        if sorted(layer_order) != ["a", "c", "n"]:
            raise ValueError(f"layer_order must be a permutation of 'can', got {layer_order!r}.")
        norm = None if norm in (None, "none") else norm
        if norm not in (None, "batch", "instance"):
            raise ValueError(f"norm must be 'batch', 'instance' or 'none', got {norm!r}.")
        activation = activation.lower()
        if activation != "linear" and activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be 'linear' or one of {sorted(_ACTIVATIONS)}, got {activation!r}."
            )
        if filter_steps not in ("first", "last", "linear"):
            raise ValueError(
                f"filter_steps must be 'first', 'last' or 'linear', got {filter_steps!r}."
            )
        self.num_repeats = num_repeats
        self.residual = residual
        self.layer_order = layer_order
        self.dropout = float(dropout or 0.0)
        self.norm_name = norm
        self.act_name = activation
        self._norm_key = f"{norm}_norm" if norm else None
        self._act_key = f"{activation}_act" if activation != "linear" else None
        self._conv_key = f"Conv{ndim}d"
        if filter_steps == "first":
            widths = [in_filters] + [out_filters] * num_repeats
        elif filter_steps == "last":
            widths = [in_filters] * num_repeats + [out_filters]
        else:
            step = (out_filters - in_filters) / num_repeats
            widths = [in_filters + round(step * i) for i in range(num_repeats)] + [out_filters]
        # 0.1.0: an int padding is not used ("same"); a per-axis sequence is given X first
        # (``(px, py, pz)``) and applied by zero padding the input before each convolution
        self._pre_pad: tuple[int, ...] | None = None
        if isinstance(padding, Sequence) and not isinstance(padding, str):
            self._pre_pad = tuple(int(p) for p in padding for _ in (0, 1))
            padding = 0
        elif padding is None or isinstance(padding, int):
            padding = "same"
        conv = {
            (2, False): nn.Conv2d,
            (3, False): nn.Conv3d,
            (2, True): nn.ConvTranspose2d,
            (3, True): nn.ConvTranspose3d,
        }[(ndim, transpose)]
        if transpose and padding == "same":
            padding = tuple(k // 2 for k in ks)
        norm_cls = {
            ("batch", 2): nn.BatchNorm2d,
            ("batch", 3): nn.BatchNorm3d,
            ("instance", 2): nn.InstanceNorm2d,
            ("instance", 3): nn.InstanceNorm3d,
        }
        # registration order is that of the 0.1.0 checkpoints: norms, convs, shortcut, acts
        if self.dropout:
            drop = nn.Dropout2d if ndim == 2 else nn.Dropout3d
            for i in range(num_repeats):
                self.add_module(f"dropout_{i}", drop(self.dropout))
        for i in range(num_repeats):
            if norm:
                channels = (
                    widths[i + 1]
                    if layer_order.index("n") > layer_order.index("c")
                    else (widths[i])
                )
                self.add_module(f"{norm}_norm_{i}", norm_cls[(norm, ndim)](channels))
            else:
                self.add_module(f"none_norm_{i}", None)
        for i in range(num_repeats):
            self.add_module(
                f"{self._conv_key}_{i}", conv(widths[i], widths[i + 1], ks, padding=padding)
            )
        self.resid_conv = (nn.Conv2d if ndim == 2 else nn.Conv3d)(
            in_filters, out_filters, kernel_size=1
        )
        if self._act_key:
            for i in range(num_repeats):
                self.add_module(f"{self._act_key}_{i}", _ACTIVATIONS[activation]())

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for i in range(self.num_repeats):
            for step in self.layer_order:
                if step == "c":
                    if self._pre_pad is not None:
                        y = F.pad(y, self._pre_pad)
                    y = getattr(self, f"{self._conv_key}_{i}")(y)
                    if self.dropout:
                        y = getattr(self, f"dropout_{i}")(y)
                elif step == "a" and self._act_key:
                    y = getattr(self, f"{self._act_key}_{i}")(y)
                elif step == "n" and self._norm_key:
                    y = getattr(self, f"{self._norm_key}_{i}")(y)
        if self.residual:
            y = y + self._shortcut(x, y.shape[1])
        return y

    def _shortcut(self, x: Tensor, out_channels: int) -> Tensor:
        # 0.1.0: widening blocks zero-pad the input's channels in front; narrowing ones
        # project with the 1x1 convolution
        extra = out_channels - x.shape[1]
        if extra > 0:
            return torch.cat([x.new_zeros(x.shape[0], extra, *x.shape[2:]), x], dim=1)
        if extra < 0:
            return self.resid_conv(x)
        return x


class ConvBlock2D(_ConvBlock):
    """2D convolution block (see :class:`_ConvBlock`)."""

    _ndim = 2


class ConvBlock3D(_ConvBlock):
    """3D convolution block (see :class:`_ConvBlock`)."""

    _ndim = 3

    def __init__(
        self,
        in_filters: int,
        out_filters: int,
        dropout: float | bool = False,
        norm: Literal["batch", "instance"] | None = "batch",
        residual: bool = True,
        activation: str = "relu",
        transpose: bool = False,
        kernel_size: int | Sequence[int] = (3, 3, 3),
        num_repeats: int = 3,
        filter_steps: Literal["first", "last", "linear"] = "first",
        layer_order: str = "can",
        padding: int | Sequence[int] | str | None = None,
    ) -> None:
        super().__init__(
            in_filters,
            out_filters,
            dropout=dropout,
            norm=norm,
            residual=residual,
            activation=activation,
            transpose=transpose,
            kernel_size=kernel_size,
            num_repeats=num_repeats,
            filter_steps=filter_steps,
            layer_order=layer_order,
            padding=padding,
        )
