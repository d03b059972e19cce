"""Forward + backward time per sample of every viscy-models architecture on CPU.

Plain script, prints JSON; there is no target (the numbers are for the record). Each model
runs at a documented input size (below, also in the JSON) with a small batch: one warm-up
step, then ``--repeats`` timed steps; the median is reported. Because CPU speed varies
between machines and with load, each time is also given as a ratio to a reference
measured in the same run: forward + backward of a 1024x1024 fp32 matmul.

    uv run python -m benchmarks.models [--repeats 1] [--threads 1] [--only UNeXt2 ...]

Single-threaded by default: per-sample cost, comparable between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

import viscy_models as vm
from benchmarks.common import machine

# name -> (constructor, input shape (B, C, Z, Y, X) or (B, C, Y, X), forward kwargs)
CASES: dict[str, tuple[Callable[[], torch.nn.Module], tuple[int, ...], dict]] = {
    "UNeXt2 (convnextv2_tiny)": (lambda: vm.UNeXt2(), (2, 1, 5, 64, 64), {}),
    "FullyConvolutionalMAE (mask 0.5)": (
        lambda: vm.FullyConvolutionalMAE(1, 1),
        (2, 1, 5, 64, 64),
        {"mask_ratio": 0.5},
    ),
    "Unet2d": (lambda: vm.Unet2d(), (2, 1, 64, 64), {}),
    "Unet25d": (lambda: vm.Unet25d(), (2, 1, 5, 64, 64), {}),
    "Unet3d": (lambda: vm.Unet3d(), (2, 1, 16, 32, 32), {}),
    "ContrastiveEncoder (convnext_tiny)": (
        lambda: vm.ContrastiveEncoder("convnext_tiny", in_channels=2, in_stack_depth=15),
        (2, 2, 15, 64, 64),
        {},
    ),
    "ContrastiveEncoder (resnet50)": (
        lambda: vm.ContrastiveEncoder(
            "resnet50",
            in_channels=2,
            in_stack_depth=16,
            stem_kernel_size=(4, 4, 4),
            stem_stride=(4, 4, 4),
            embedding_dim=2048,
        ),
        (2, 2, 16, 64, 64),
        {},
    ),
    "ResNet3dEncoder (resnet18)": (
        lambda: vm.ResNet3dEncoder("resnet18", in_channels=1),
        (2, 1, 16, 32, 32),
        {},
    ),
    "BetaVae25D (resnet50)": (
        lambda: vm.BetaVae25D(in_channels=2, in_stack_depth=16, input_spatial_size=(64, 64)),
        (2, 2, 16, 64, 64),
        {},
    ),
    "BetaVaeMonai (2D)": (
        lambda: vm.BetaVaeMonai(
            spatial_dims=2,
            in_shape=(1, 64, 64),
            out_channels=1,
            latent_size=128,
            channels=(16, 32, 64),
            strides=(2, 2, 2),
        ),
        (2, 1, 64, 64),
        {},
    ),
}


def _scalar(out) -> torch.Tensor:
    """Reduce any model output (tensor, tuple, namespace) to a scalar for backward."""
    if isinstance(out, torch.Tensor):
        return out.float().mean()
    if isinstance(out, tuple | list):
        return sum(_scalar(o) for o in out if o is not None and o.dtype.is_floating_point)
    return _scalar(out.recon_x) + out.mean.float().mean()


def _time_step(step: Callable[[], None], repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reference_seconds(repeats: int) -> float:
    a = torch.randn(1024, 1024, requires_grad=True)
    b = torch.randn(1024, 1024)

    def step() -> None:
        (a @ b).sum().backward()

    return _time_step(step, max(repeats, 3))


def bench(name: str, repeats: int) -> dict:
    build, shape, kwargs = CASES[name]
    torch.manual_seed(0)
    model = build().train()
    x = torch.randn(shape)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        _scalar(model(x, **kwargs)).backward()

    seconds = _time_step(step, repeats)
    return {
        "model": name,
        "input_shape": list(shape),
        "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "fwd_bwd_ms_per_sample": round(1000 * seconds / shape[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared, loaded machine more threads spin in "
        "OpenMP barriers and times become 10x slower and noisy)",
    )
    parser.add_argument("--only", nargs="*", default=None, help="substrings of model names")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n for n in CASES if not args.only or any(s in n for s in args.only)]
    start = time.perf_counter()
    ref = reference_seconds(args.repeats)
    results = []
    for name in names:
        row = bench(name, args.repeats)
        row["ratio_to_reference"] = round(row["fwd_bwd_ms_per_sample"] / (1000 * ref), 2)
        results.append(row)
    print(
        json.dumps(
            {
                "benchmark": "viscy-models forward+backward per sample, CPU, fp32, train mode",
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "machine": machine(),
                "reference": "fwd+bwd of a 1024x1024 fp32 matmul",
                "reference_ms": round(1000 * ref, 1),
                "repeats": args.repeats,
                "results": results,
                "total_seconds": round(time.perf_counter() - start, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
