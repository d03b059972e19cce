"""Separable Gaussian filtering with a different sigma for every sample of a batch."""

from __future__ import annotations

import torch
from kornia.filters import filter3d
from monai.networks.layers.convutils import gaussian_1d

__all__ = ["gaussian_blur3d", "gaussian_kernels_1d"]


def gaussian_kernels_1d(sigmas: torch.Tensor, truncated: float = 4.0) -> torch.Tensor:
    """One MONAI ``erf`` Gaussian kernel per sigma, zero-padded to a common odd length.

    Parameters
    ----------
    sigmas : torch.Tensor
        (N,) standard deviations in voxels; 0 gives the identity kernel.
    truncated : float
        Kernel half-width in units of sigma (as MONAI ``GaussianFilter``).

    Returns
    -------
    torch.Tensor
        (N, K) float32 kernels on the CPU.
    """
    kernels = [
        gaussian_1d(torch.tensor(float(s)), truncated=truncated, approx="erf")
        if s > 0
        else torch.ones(1)
        for s in sigmas.tolist()
    ]
    length = max(len(k) for k in kernels)
    out = torch.zeros(len(kernels), length)
    for row, kernel in enumerate(kernels):
        pad = (length - len(kernel)) // 2
        out[row, pad : pad + len(kernel)] = kernel
    return out


def gaussian_blur3d(
    img: torch.Tensor,
    sigmas: torch.Tensor,
    truncated: float = 4.0,
    border_type: str = "constant",
) -> torch.Tensor:
    """Blur each sample of (B, C, Z, Y, X) ``img`` with its own (sigma_z, sigma_y, sigma_x).

    Parameters
    ----------
    img : torch.Tensor
        Floating (B, C, Z, Y, X) tensor, on any device.
    sigmas : torch.Tensor
        (B, 3) standard deviations in voxels along Z, Y, X.
    truncated : float
        Kernel half-width in units of sigma.
    border_type : str
        Padding of kornia ``filter3d``: constant (zeros), reflect, replicate or circular.
    """
    for axis in range(3):
        kernels = gaussian_kernels_1d(sigmas[:, axis], truncated)
        if kernels.shape[1] == 1:
            continue
        shape = [len(kernels), 1, 1, 1]
        shape[axis + 1] = kernels.shape[1]
        kernel = kernels.reshape(shape).to(device=img.device, dtype=img.dtype)
        img = filter3d(img, kernel, border_type=border_type)
    return img
