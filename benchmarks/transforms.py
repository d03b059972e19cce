"""Benchmark: batched augmentation chain vs a per-sample loop of the MONAI equivalents.

Plain script, prints one JSON object. Both chains run in the same process on the same device
and input: affine (rotate/shear/scale), flip, gamma contrast, intensity scaling, Gaussian
smoothing and Gaussian noise, every transform with probability 1 (flip 0.5 per axis).

    uv run python -m benchmarks.transforms [--device cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time

import torch
from monai.data import set_track_meta
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
)

from benchmarks.common import machine
from viscy_transforms import (
    BatchedRandAdjustContrastd,
    BatchedRandAffined,
    BatchedRandFlipd,
    BatchedRandGaussianNoised,
    BatchedRandGaussianSmoothd,
    BatchedRandScaleIntensityd,
)

KEYS = ["image"]


def batched_chain() -> Compose:
    return Compose(
        [
            BatchedRandAffined(
                KEYS,
                prob=1.0,
                rotate_range=[math.pi, 0.0, 0.0],
                shear_range=[0.0, 0.01, 0.01],
                scale_range=(0.8, 1.2),
            ),
            BatchedRandFlipd(KEYS, spatial_axes=[1, 2], prob=0.5),
            BatchedRandAdjustContrastd(KEYS, gamma=(0.8, 1.2), prob=1.0),
            BatchedRandScaleIntensityd(KEYS, factors=0.5, prob=1.0),
            BatchedRandGaussianSmoothd(
                KEYS, sigma_x=(0.25, 0.75), sigma_y=(0.25, 0.75), sigma_z=0.0, prob=1.0
            ),
            BatchedRandGaussianNoised(KEYS, std=0.2, prob=1.0),
        ]
    ).set_random_state(0)


def monai_chain() -> Compose:
    # MONAI orders sigma_x, sigma_y, sigma_z along the array axes (Z, Y, X).
    return Compose(
        [
            RandAffined(
                KEYS,
                prob=1.0,
                rotate_range=[math.pi, 0.0, 0.0],
                shear_range=[0.0, 0.01, 0.01],
                scale_range=[0.2, 0.2, 0.2],
                padding_mode="zeros",
            ),
            RandFlipd(KEYS, spatial_axis=[1, 2], prob=0.5),
            RandAdjustContrastd(KEYS, gamma=(0.8, 1.2), prob=1.0),
            RandScaleIntensityd(KEYS, factors=0.5, prob=1.0),
            RandGaussianSmoothd(
                KEYS, sigma_x=(0.0, 0.0), sigma_y=(0.25, 0.75), sigma_z=(0.25, 0.75), prob=1.0
            ),
            RandGaussianNoised(KEYS, std=0.2, prob=1.0),
        ]
    ).set_random_state(0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> tuple[list[float], torch.Tensor]:
    out = fn()  # warm-up (kernel selection, allocator); its output is checked by the caller
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=5, default=[32, 2, 8, 256, 256])
    args = parser.parse_args()

    device = torch.device(args.device)
    set_track_meta(False)  # MONAI's fastest path: plain tensors, no metadata
    batch = torch.rand(args.shape, generator=torch.Generator().manual_seed(0)).to(device)
    batched, per_sample = batched_chain(), monai_chain()

    def run_batched():
        return batched({"image": batch})["image"]

    def run_per_sample():
        return torch.stack([per_sample({"image": sample})["image"] for sample in batch])

    t_batched, out_batched = _time(run_batched, device, args.repeats)
    t_per_sample, out_per_sample = _time(run_per_sample, device, args.repeats)
    assert out_batched.shape == out_per_sample.shape == batch.shape
    assert out_batched.dtype == batch.dtype
    assert out_batched.device == batch.device
    median_batched = statistics.median(t_batched)
    median_per_sample = statistics.median(t_per_sample)
    print(
        json.dumps(
            {
                "benchmark": "augmentation chain: affine, flip, contrast, scale, smooth, noise",
                "shape": args.shape,
                "dtype": str(batch.dtype),
                "device": str(device),
                "device_name": (
                    torch.cuda.get_device_name(device)
                    if device.type == "cuda"
                    else platform.processor() or platform.machine()
                ),
                "machine": machine(),
                "torch_threads": torch.get_num_threads(),
                "repeats": args.repeats,
                "batched_s": round(median_batched, 4),
                "monai_per_sample_loop_s": round(median_per_sample, 4),
                "speedup_batched_vs_loop": round(median_per_sample / median_batched, 2),
                "batched_runs_s": [round(t, 4) for t in t_batched],
                "monai_runs_s": [round(t, 4) for t in t_per_sample],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
