"""Small encoders that train in minutes on a CPU.

:class:`TinyEncoder` is the encoder of ``dynaclr demo`` and the tests;
:class:`TinyContrastiveEncoder` is a ``viscy_models.ContrastiveEncoder`` at toy sizes (the
committed reference checkpoint). For real data use ``viscy_models.ContrastiveEncoder``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from viscy_models.contrastive.encoder import ContrastiveEncoder

__all__ = ["TinyContrastiveEncoder", "TinyEncoder"]


class TinyEncoder(nn.Module):
    """Three conv blocks, global average pooling and a projection MLP.

    The z slices of the (B, C, Z, Y, X) input are stacked with the channels, so
    ``in_channels * in_stack_depth`` input planes reach the first convolution.

    Parameters
    ----------
    in_channels : int
        Image channels.
    in_stack_depth : int
        Z slices of the input.
    width : int
        Channels of the first conv block (doubled in each of the next two).
    embedding_dim : int
        Size of the features.
    projection_dim : int
        Size of the projections the contrastive loss sees.
    """

    def __init__(
        self,
        in_channels: int = 2,
        in_stack_depth: int = 1,
        width: int = 16,
        embedding_dim: int = 64,
        projection_dim: int = 32,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.in_stack_depth = in_stack_depth
        planes = in_channels * in_stack_depth
        layers: list[nn.Module] = []
        for i in range(3):
            out = width * 2**i
            layers += [
                nn.Conv2d(planes, out, kernel_size=3, padding=1),
                nn.GroupNorm(min(4, out), out),
                nn.GELU(),
                nn.MaxPool2d(2),
            ]
            planes = out
        self.stem = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embedding = nn.Linear(planes, embedding_dim)
        self.projection = nn.Sequential(
            nn.Linear(embedding_dim, embedding_dim),
            nn.GELU(),
            nn.Linear(embedding_dim, projection_dim),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map (B, C, Z, Y, X) to ``(features (B, D), projections (B, P))``."""
        if x.ndim != 5:
            raise ValueError(
                f"TinyEncoder expects (B, C, Z, Y, X) input, got shape {tuple(x.shape)}"
            )
        b, c, z, y, w = x.shape
        if c * z != self.in_channels * self.in_stack_depth:
            raise ValueError(
                f"TinyEncoder was built for {self.in_channels} channels x "
                f"{self.in_stack_depth} z slices, got {c} x {z}"
            )
        h = self.stem(x.reshape(b, c * z, y, w))
        features = self.embedding(self.pool(h).flatten(1))
        return features, self.projection(features)


class TinyContrastiveEncoder(ContrastiveEncoder):
    """:class:`~viscy_models.ContrastiveEncoder` with a toy-sized ConvNeXt backbone.

    The same modules in the same places as ``ContrastiveEncoder("convnext_tiny", ...)``
    (a ``StemDepthtoChannels`` stem in place of the patchify convolution, a timm ConvNeXt,
    the Linear-BN-ReLU-Linear-BN projection) and the same forward, so its state dict has
    the same keys; only the widths differ. Its smallest public backbone, ``convnext_tiny``,
    has 28M parameters (a 110 MB checkpoint); this one has about 60k, for checkpoints that
    can be committed and tests that run in seconds.

    Parameters
    ----------
    in_channels : int
        Input channels.
    in_stack_depth : int
        Input depth (Z).
    stem_kernel_size : tuple of int
        Stem kernel ``(kz, ky, kx)``.
    stem_stride : tuple of int
        Stem stride.
    dims : sequence of int
        Channels of the four ConvNeXt stages; the last is the embedding size.
    depths : sequence of int
        Blocks per stage (``convnext_tiny``'s ``(3, 3, 9, 3)`` by default).
    projection_dim : int
        Projection dimension.
    """

    def __init__(
        self,
        in_channels: int = 2,
        in_stack_depth: int = 5,
        stem_kernel_size: tuple[int, int, int] = (5, 4, 4),
        stem_stride: tuple[int, int, int] = (5, 4, 4),
        dims: Sequence[int] = (8, 16, 24, 32),
        depths: Sequence[int] = (3, 3, 9, 3),
        projection_dim: int = 16,
    ) -> None:
        nn.Module.__init__(self)  # ContrastiveEncoder.__init__ would build convnext_tiny
        from viscy_models._pretrained import create_timm_model
        from viscy_models.components.heads import projection_mlp
        from viscy_models.components.stems import StemDepthtoChannels

        encoder = create_timm_model(
            "convnext_tiny", num_classes=0, dims=tuple(dims), depths=tuple(depths)
        )
        encoder.stem[0] = nn.Identity()  # the 3D stem below replaces the patchify conv
        self.stem = StemDepthtoChannels(
            in_channels,
            in_stack_depth,
            int(dims[0]),
            stem_kernel_size=stem_kernel_size,
            stem_stride=stem_stride,
            backbone_name="convnext_tiny",
        )
        self.encoder = encoder
        self.projection = projection_mlp(int(dims[-1]), int(dims[-1]), projection_dim)
        self.backbone = "convnext_tiny"
        self.in_stack_depth = in_stack_depth
