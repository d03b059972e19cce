"""A small convolutional encoder that trains in minutes on a CPU.

Used by ``dynaclr demo``, the tests and the committed reference checkpoint. For real
data use ``viscy_models.ContrastiveEncoder``.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["TinyEncoder"]


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
