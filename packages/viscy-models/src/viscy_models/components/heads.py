"""Output heads: voxel heads for image-to-image models, projection and classifier heads,
and the task heads of multi-task models (:class:`BaseHead`)."""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "BaseHead",
    "ClassificationHead",
    "CrossModalContrastiveHead",
    "UnsqueezeHead",
    "MLP",
    "Conv3dPReLU",
    "CosineClassifier",
    "PixelShuffleUpsample",
    "PixelToVoxelHead",
    "PixelToVoxelShuffleHead",
    "projection_mlp",
    "voxel_head_channels",
]


class PixelShuffleUpsample(nn.Module):
    """Parameter-free pixel shuffle, optionally followed by a blur that suppresses
    checkerboard artefacts: zero padding of ``scale - 1`` rows/columns at the top and left,
    then a ``scale x scale`` average pool with stride 1 (the border pixels average in zeros,
    as in 0.1.0)."""

    def __init__(self, scale: int, pool: bool = False) -> None:
        super().__init__()
        self.shuffle = nn.PixelShuffle(scale)
        self.pool = (
            nn.Sequential(
                nn.ConstantPad2d((scale - 1, 0, scale - 1, 0), 0.0),
                nn.AvgPool2d(scale, stride=1),
            )
            if pool
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.shuffle(x))


class Conv3dPReLU(nn.Module):
    """3D convolution, instance norm (no affine parameters) and PReLU.

    The ``conv`` / ``adn.N`` / ``adn.A`` names follow MONAI's ``Convolution`` so the
    checkpoint keys stay ``conv.weight``, ``conv.bias`` and ``adn.A.weight``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, padding: Sequence[int]
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, padding=tuple(padding))
        self.adn = nn.Sequential(OrderedDict(N=nn.InstanceNorm3d(out_channels), A=nn.PReLU()))

    def forward(self, x: Tensor) -> Tensor:
        return self.adn(self.conv(x))


def voxel_head_channels(out_channels: int, out_stack_depth: int, expansion_ratio: int) -> int:
    """Channels a decoder must hand to :class:`PixelToVoxelHead`."""
    return out_channels * expansion_ratio * (out_stack_depth + 2) * 4


class PixelToVoxelHead(nn.Module):
    """Turn a 2D feature map at 1/4 resolution into a 3D stack at full resolution.

    Pixel-shuffle x2, split channels into ``out_stack_depth + 2`` slices, a 3x3x3
    convolution without depth padding (so two slices are consumed), a 1x1x1 projection,
    then pixel-shuffle x2 in Y/X.

    Parameters
    ----------
    in_channels : int
        Channels of the input; each of the ``out_stack_depth + 2`` slices gets
        ``in_channels // ((out_stack_depth + 2) * 4)`` channels. Decoders hand
        ``voxel_head_channels(out_channels, out_stack_depth, expansion_ratio)``. As in
        0.1.0 a count that is not a multiple of ``(out_stack_depth + 2) * 4`` builds
        (with a warning) a head that takes the rounded-down multiple.
    out_channels : int
        Output channels.
    out_stack_depth : int
        Output depth (Z).
    expansion_ratio : int
        Width of the 3D convolution relative to ``out_channels * 4``.
    pool : bool
        Blur (zero pad + average pool) after the first pixel shuffle.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        out_stack_depth: int,
        expansion_ratio: int,
        pool: bool,
    ) -> None:
        super().__init__()
        slices = (out_stack_depth + 2) * 4
        if in_channels < slices:
            raise ValueError(
                f"PixelToVoxelHead got in_channels={in_channels}; it needs at least "
                f"(out_stack_depth + 2) * 4 = {slices}."
            )
        if in_channels % slices:
            warnings.warn(
                f"PixelToVoxelHead: in_channels={in_channels} is not a multiple of "
                f"(out_stack_depth + 2) * 4 = {slices}; the head takes inputs of "
                f"{in_channels // slices * slices} channels (as in 0.1.0).",
                UserWarning,
                stacklevel=2,
            )
        self.upsample = PixelShuffleUpsample(2, pool=pool)
        self.out_stack_depth = out_stack_depth
        self.conv_in = in_channels // slices
        mid_channels = out_channels * expansion_ratio * 4
        self.conv = nn.Sequential(
            Conv3dPReLU(self.conv_in, mid_channels, kernel_size=3, padding=(0, 1, 1)),
            nn.Conv3d(mid_channels, out_channels * 4, kernel_size=1),
        )
        self.out = nn.PixelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        expected = self.conv_in * (self.out_stack_depth + 2) * 4
        if x.ndim != 4 or x.shape[1] != expected:
            raise ValueError(
                f"PixelToVoxelHead expects (B, {expected}, Y, X) input, got {tuple(x.shape)}."
            )
        x = self.upsample(x)
        b, c, h, w = x.shape
        x = x.reshape(b, c // (self.out_stack_depth + 2), self.out_stack_depth + 2, h, w)
        x = self.conv(x)
        # pixel shuffle per slice: move depth into the batch axis
        b, c, d, h, w = x.shape
        x = x.transpose(1, 2).reshape(b * d, c, h, w)
        x = self.out(x)
        return x.reshape(b, d, c // 4, h * 2, w * 2).transpose(1, 2)


class UnsqueezeHead(nn.Module):
    """Add a depth axis of size 1: ``(B, C, Y, X) -> (B, C, 1, Y, X)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(2)


class PixelToVoxelShuffleHead(nn.Module):
    """Parameter-free head: pixel-shuffle ``xy_scaling`` times in Y/X, then split the
    channels into ``(out_channels, out_stack_depth)``.

    Parameters
    ----------
    in_channels : int
        Channels of the input; must be ``out_channels * out_stack_depth * xy_scaling**2``.
        0.1.0 does not use this value (the input's channel count decides), so another value
        only warns; a wrong input raises at :meth:`forward`.
    out_channels : int
        Output channels.
    out_stack_depth : int
        Output depth (Z).
    xy_scaling : int
        Pixel-shuffle factor in Y and X.
    pool : bool
        Blur (zero pad + average pool) after the pixel shuffle.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        out_stack_depth: int = 5,
        xy_scaling: int = 4,
        pool: bool = False,
    ) -> None:
        super().__init__()
        needed = out_channels * out_stack_depth * xy_scaling**2
        if in_channels != needed:
            warnings.warn(
                f"PixelToVoxelShuffleHead: in_channels={in_channels} differs from "
                f"out_channels * out_stack_depth * xy_scaling**2 = {needed}, the channel count "
                "its input must have (in_channels is not used, as in 0.1.0).",
                UserWarning,
                stacklevel=2,
            )
        self.out_channels = out_channels
        self.out_stack_depth = out_stack_depth
        self.xy_scaling = xy_scaling
        self.upsample = PixelShuffleUpsample(xy_scaling, pool=pool)

    def forward(self, x: Tensor) -> Tensor:
        needed = self.out_channels * self.out_stack_depth * self.xy_scaling**2
        if x.ndim != 4 or x.shape[1] != needed:
            raise ValueError(
                f"PixelToVoxelShuffleHead expects (B, {needed}, Y, X) input "
                f"(out_channels * out_stack_depth * xy_scaling**2), got {tuple(x.shape)}."
            )
        x = self.upsample(x)
        b, _, h, w = x.shape
        return x.reshape(b, self.out_channels, self.out_stack_depth, h, w)


def projection_mlp(in_dims: int, hidden_dims: int, out_dims: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear-BN projection used by contrastive encoders.

    Indices (0, 1, 3, 4) are part of the checkpoint format; do not reorder.
    """
    return nn.Sequential(
        nn.Linear(in_dims, hidden_dims),
        nn.BatchNorm1d(hidden_dims),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dims, out_dims),
        nn.BatchNorm1d(out_dims),
    )


class CosineClassifier(nn.Module):
    """Linear classifier on L2-normalised features and weights, times a (learnable) scale.

    ``logits = exp(log_scale) * cos(x, weight)``; the scale is stored as its logarithm
    (``log_scale``, the 0.1.0 checkpoint key) so that a learned scale stays positive.

    Parameters
    ----------
    in_dim : int
        Feature dimension.
    num_classes : int
        Number of classes.
    init_scale : float
        Initial logit scale (inverse temperature); must be positive.
    learn_scale : bool
        Whether the scale is a trainable parameter (else a buffer, still in the state dict).
    """

    def __init__(
        self, in_dim: int, num_classes: int, init_scale: float = 20.0, learn_scale: bool = True
    ) -> None:
        super().__init__()
        if init_scale <= 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}.")
        self.weight = nn.Parameter(torch.empty(num_classes, in_dim))
        nn.init.normal_(self.weight, std=0.01)
        log_scale = torch.tensor(math.log(init_scale))
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def scale(self) -> Tensor:
        """The logit scale, ``exp(log_scale)``."""
        return self.log_scale.exp()

    def forward(self, x: Tensor) -> Tensor:
        cosine = F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1))
        return self.scale * cosine


_ACTIVATIONS = {"relu": partial(nn.ReLU, inplace=True), "gelu": nn.GELU, "silu": nn.SiLU}
_NORMS = {"bn": nn.BatchNorm1d, "ln": nn.LayerNorm}


class MLP(nn.Module):
    """Multi-layer perceptron in one of two modes (the 0.1.0 layout).

    - Projection (``num_classes=None``): hidden layers (Linear-norm-activation[-dropout]),
      then ``Linear(out_dims)`` and a final norm; :meth:`forward` returns that projection.
    - Classification (``num_classes`` set): hidden layers, then ``head``, a
      :class:`CosineClassifier` or a Linear layer; :meth:`forward` returns the logits and
      :meth:`encode` the L2-normalised features before the head. ``out_dims`` is not used.

    Parameters
    ----------
    in_dims : int
        Input features.
    hidden_dims : int | list[int]
        Width of each hidden layer (an empty list: none).
    out_dims : int | None
        Projection size; required in projection mode.
    norm : {"bn", "ln"}
        Batch or layer normalisation.
    activation : {"relu", "gelu", "silu"}
        Activation of the hidden layers.
    dropout : float
        Dropout after each hidden layer (none when 0).
    num_classes : int | None
        If set, classification mode with this many classes.
    cosine_classifier : bool
        Classification mode: :class:`CosineClassifier` (else a Linear layer) as the head.
    """

    def __init__(
        self,
        in_dims: int,
        hidden_dims: int | list[int],
        out_dims: int | None = None,
        norm: Literal["bn", "ln"] = "bn",
        activation: Literal["relu", "gelu", "silu"] = "relu",
        dropout: float = 0.0,
        num_classes: int | None = None,
        cosine_classifier: bool = True,
    ) -> None:
        super().__init__()
        if norm not in _NORMS:
            raise ValueError(f"norm must be 'bn' or 'ln', got {norm!r}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be 'relu', 'gelu', or 'silu', got {activation!r}.")
        if num_classes is None and out_dims is None:
            raise ValueError("out_dims is required in projection mode (num_classes=None).")
        if num_classes is not None and out_dims is not None:
            warnings.warn(
                f"MLP: out_dims={out_dims} is not used in classification mode "
                f"(num_classes={num_classes}); the head sits on the last hidden layer.",
                UserWarning,
                stacklevel=2,
            )
        hidden = [hidden_dims] if isinstance(hidden_dims, int) else list(hidden_dims)
        layers: list[nn.Module] = []
        prev = in_dims
        for width in hidden:
            layers += [nn.Linear(prev, width), _NORMS[norm](width), _ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = width
        self.num_classes = num_classes
        if num_classes is None:
            layers += [nn.Linear(prev, out_dims), _NORMS[norm](out_dims)]
            prev = out_dims
        self.backbone = nn.Sequential(*layers)
        self.out_features = prev
        if num_classes is not None:
            self.head = (
                CosineClassifier(prev, num_classes)
                if cosine_classifier
                else nn.Linear(prev, num_classes)
            )

    def encode(self, x: Tensor) -> Tensor:
        """L2-normalised features before the classification head (classification mode)."""
        if self.num_classes is None:
            raise RuntimeError(
                "encode() is only available in classification mode (num_classes != None)."
            )
        return F.normalize(self.backbone(x), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.backbone(x)
        return x if self.num_classes is None else self.head(x)


_SCHEDULES = ("cosine", "constant")


class BaseHead(nn.Module, ABC):
    """Abstract task head of a multi-task model: it names its batch key, computes its own
    loss and logs its own metrics, so heads can sit in an ``nn.ModuleDict``.

    The loss weight follows a schedule: ``"constant"`` (always ``loss_weight``) or
    ``"cosine"``, a half-cosine ramp from ``weight_start`` at epoch 0 to ``loss_weight`` at
    ``weight_warmup_epochs`` (constant after). Call :meth:`step` with the epoch (0-indexed)
    at the start of each epoch and :meth:`get_weight` for the current weight.

    Parameters
    ----------
    head_name : str
        Name used in logged keys (``loss/aux/<head_name>/<stage>``).
    batch_key : str
        Key of the head's targets in the batch dict.
    loss_weight : float
        Final (or constant) weight of this head's loss.
    weight_schedule : {"cosine", "constant"}
        Schedule of the loss weight.
    weight_start : float
        Weight at epoch 0 of the cosine schedule.
    weight_warmup_epochs : int
        Epochs of the cosine ramp.
    """

    def __init__(
        self,
        head_name: str,
        batch_key: str,
        loss_weight: float = 1.0,
        weight_schedule: Literal["cosine", "constant"] = "constant",
        weight_start: float = 0.0,
        weight_warmup_epochs: int = 50,
    ) -> None:
        super().__init__()
        if weight_schedule not in _SCHEDULES:
            # 0.1.0 treats any other value as "constant", silently
            raise ValueError(
                f"weight_schedule must be 'cosine' or 'constant', got {weight_schedule!r}."
            )
        self.head_name = head_name
        self.batch_key = batch_key
        self.loss_weight = loss_weight
        self.weight_schedule = weight_schedule
        self.weight_start = weight_start
        self.weight_warmup_epochs = weight_warmup_epochs
        self._weight = self._weight_at(0)

    def _weight_at(self, epoch: int) -> float:
        if self.weight_schedule == "constant" or epoch >= self.weight_warmup_epochs:
            return float(self.loss_weight)
        ramp = (1.0 - math.cos(math.pi * epoch / self.weight_warmup_epochs)) / 2.0
        return float(self.weight_start + (self.loss_weight - self.weight_start) * ramp)

    def step(self, epoch: int) -> None:
        """Set the loss weight for ``epoch`` (0-indexed)."""
        self._weight = self._weight_at(epoch)

    def get_weight(self) -> float:
        """The loss weight of the current epoch."""
        return self._weight

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Head output for backbone features ``x``."""

    @abstractmethod
    def compute_loss(self, y_hat: Tensor, y: Tensor) -> Tensor:
        """Scalar loss of the head output ``y_hat`` against the targets ``y``."""

    @abstractmethod
    def log_metrics(self, out: dict, log_fn: Callable, stage: str) -> None:
        """Log the head's metrics with ``log_fn(name, value)`` (Lightning's ``self.log``);
        ``out`` holds ``"loss"``, ``"logits"`` and ``"y"``."""


class ClassificationHead(BaseHead):
    """Classification task head: an :class:`MLP` classifier (``mlp``), cross-entropy loss
    and top-1 / top-k accuracy.

    Parameters
    ----------
    head_name, batch_key, loss_weight, weight_schedule, weight_start, weight_warmup_epochs
        See :class:`BaseHead`.
    in_dims : int
        Feature size of the backbone.
    hidden_dims : int | list[int]
        Hidden width(s) of the MLP.
    num_classes : int
        Number of classes.
    cosine_classifier : bool
        :class:`CosineClassifier` (else Linear) logits.
    top_k : int
        The k of the top-k accuracy; at most ``num_classes``.
    """

    def __init__(
        self,
        head_name: str,
        batch_key: str,
        in_dims: int,
        hidden_dims: int | list[int],
        num_classes: int,
        cosine_classifier: bool = True,
        loss_weight: float = 1.0,
        top_k: int = 5,
        weight_schedule: Literal["cosine", "constant"] = "constant",
        weight_start: float = 0.0,
        weight_warmup_epochs: int = 50,
    ) -> None:
        super().__init__(
            head_name, batch_key, loss_weight, weight_schedule, weight_start, weight_warmup_epochs
        )
        if not 1 <= top_k <= num_classes:
            # 0.1.0 builds it and fails at the first log_metrics call
            raise ValueError(
                f"top_k={top_k} must be between 1 and num_classes={num_classes} "
                f"(head {head_name!r})."
            )
        self.top_k = top_k
        self.mlp = MLP(
            in_dims, hidden_dims, num_classes=num_classes, cosine_classifier=cosine_classifier
        )

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)`` of features ``(B, in_dims)``."""
        return self.mlp(x)

    def compute_loss(self, y_hat: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of logits ``y_hat`` against integer labels ``y`` ``(B,)``."""
        return F.cross_entropy(y_hat, y)

    def log_metrics(self, out: dict, log_fn: Callable, stage: str) -> None:
        """Log ``loss/aux/<name>/<stage>``, ``metrics/acc_top1/...`` and ``acc_top<k>``."""
        logits, y = out["logits"], out["y"]
        top1 = (logits.argmax(dim=1) == y).float().mean()
        topk = (logits.topk(self.top_k, dim=1).indices == y.unsqueeze(1)).any(dim=1)
        log_fn(f"loss/aux/{self.head_name}/{stage}", out["loss"])
        log_fn(f"metrics/acc_top1/{self.head_name}/{stage}", top1)
        log_fn(f"metrics/acc_top{self.top_k}/{self.head_name}/{stage}", topk.float().mean())


class CrossModalContrastiveHead(BaseHead):
    """Cross-modal InfoNCE head: pulls image features toward a paired vector target (e.g.
    a transcriptomic embedding) in a shared space.

    Both sides are projected by a layer-normed :class:`MLP` (``image_proj``,
    ``target_proj``) to ``proj_dims`` and L2-normalised; the loss is the symmetric
    InfoNCE over the batch at ``temperature``. Rows of the target containing NaN (unpaired
    cells) are left out; with fewer than two paired cells the loss is zero.

    Parameters
    ----------
    head_name, batch_key, loss_weight, weight_schedule, weight_start, weight_warmup_epochs
        See :class:`BaseHead`.
    in_dims : int
        Feature size of the backbone.
    target_dims : int
        Size of the paired target vector.
    proj_dims : int
        Size of the shared space.
    image_hidden, target_hidden : int | list[int]
        Hidden width(s) of the two projectors.
    temperature : float
        Softmax temperature of the InfoNCE loss.
    """

    def __init__(
        self,
        head_name: str,
        batch_key: str,
        in_dims: int,
        target_dims: int,
        proj_dims: int = 128,
        image_hidden: int | list[int] = 256,
        target_hidden: int | list[int] = 128,
        temperature: float = 0.1,
        loss_weight: float = 1.0,
        weight_schedule: Literal["cosine", "constant"] = "constant",
        weight_start: float = 0.0,
        weight_warmup_epochs: int = 50,
    ) -> None:
        super().__init__(
            head_name, batch_key, loss_weight, weight_schedule, weight_start, weight_warmup_epochs
        )
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.temperature = temperature
        self.image_proj = MLP(in_dims, image_hidden, out_dims=proj_dims, norm="ln")
        self.target_proj = MLP(target_dims, target_hidden, out_dims=proj_dims, norm="ln")

    def forward(self, x: Tensor) -> Tensor:
        """L2-normalised image projections ``(B, proj_dims)``."""
        return F.normalize(self.image_proj(x), dim=-1)

    def project_target(self, target: Tensor) -> Tensor:
        """L2-normalised target projections ``(B, proj_dims)``."""
        return F.normalize(self.target_proj(target), dim=-1)

    @staticmethod
    def _paired(y: Tensor) -> Tensor:
        return ~torch.isnan(y).any(dim=1)

    def compute_loss(self, y_hat: Tensor, y: Tensor) -> Tensor:
        """Symmetric InfoNCE of image projections ``y_hat`` against targets ``y``."""
        paired = self._paired(y)
        if int(paired.sum()) < 2:
            # zero, but still part of the graph so that backward() works
            return y_hat.sum() * 0.0
        image, target = y_hat[paired], self.project_target(y[paired])
        logits = image @ target.T / self.temperature
        labels = torch.arange(len(image), device=image.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    def log_metrics(self, out: dict, log_fn: Callable, stage: str) -> None:
        """Log the loss, the paired fraction and, with two or more paired cells, the mean
        image-target cosine and retrieval@1."""
        paired = self._paired(out["y"])
        name = f"{self.head_name}/{stage}"
        log_fn(f"loss/aux/{name}", out["loss"])
        log_fn(f"metrics/paired_frac/{name}", paired.float().mean())
        if int(paired.sum()) < 2:
            return
        with torch.no_grad():
            image = out["logits"][paired]
            target = self.project_target(out["y"][paired])
            similarity = image @ target.T
            labels = torch.arange(len(image), device=image.device)
            log_fn(f"metrics/cos/{name}", (image * target).sum(dim=1).mean())
            log_fn(f"metrics/r@1/{name}", (similarity.argmax(dim=1) == labels).float().mean())
