"""A plain ViT in the DINOv2 layout (chunked blocks, layer scale), for CELL-DINO weights.

The parameter names are those of DINOv2 checkpoints (``cls_token``, ``pos_embed``,
``mask_token``, ``patch_embed.proj``, ``blocks.<chunk>.<index>.*``, ``norm``), so a released
state dict loads strictly. Only inference is needed here: no drop path, no masking.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class _PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _LayerScale(nn.Module):
    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, init_value: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, num_heads)
        self.ls1 = _LayerScale(dim, init_value)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = _LayerScale(dim, init_value)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _BlockChunk(nn.ModuleList):
    """Blocks of one chunk; placeholders keep each block's global index in its name."""

    def forward(self, x: Tensor) -> Tensor:
        for block in self:
            x = block(x)
        return x


class ChunkedViT(nn.Module):
    """Vision transformer whose :meth:`forward` returns the normalised class token.

    Parameters
    ----------
    img_size, patch_size : int
        Square input size and patch size (``pos_embed`` has ``(img_size // patch_size)**2 + 1``
        positions).
    in_chans, embed_dim, depth, num_heads : int
        Input channels, width, number of blocks, attention heads.
    mlp_ratio : float
        MLP hidden width over ``embed_dim``.
    init_values : float
        Initial layer-scale value.
    block_chunks : int
        Number of chunks the blocks are stored in (DINOv2 checkpoints use 4).
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 1,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        init_values: float = 1.0,
        block_chunks: int = 4,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        if depth % block_chunks:
            raise ValueError(f"depth {depth} is not a multiple of block_chunks {block_chunks}")
        self.img_size = img_size
        n_patches = (img_size // patch_size) ** 2
        self.patch_embed = _PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        per_chunk = depth // block_chunks
        chunks = []
        for c in range(block_chunks):
            placeholders = [nn.Identity() for _ in range(c * per_chunk)]
            blocks = [
                _Block(embed_dim, num_heads, mlp_ratio, init_values) for _ in range(per_chunk)
            ]
            chunks.append(_BlockChunk(placeholders + blocks))
        self.blocks = nn.ModuleList(chunks)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_chans, img_size, img_size)`` -> class token ``(N, embed_dim)``."""
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(
                f"expected images of {self.img_size}x{self.img_size}, got {tuple(x.shape[-2:])}"
            )
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.pos_embed
        for chunk in self.blocks:
            tokens = chunk(tokens)
        return self.norm(tokens)[:, 0]
