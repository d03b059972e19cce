"""Cytoland training step vs the HCS loader alone, in samples per second.

Plate: ``viscy_data.synthetic`` with the virtual staining kinds (``Phase3D`` label-free,
``Nuclei`` and ``Membrane`` fluorescence), 4 FOVs x 4 T x 3 C x 5 Z x ``--size``^2 uint16.
Loader: HCSDataModule, z-window 5, centre-slice targets, ``--patch`` patches, FOV
normalization on the CPU, ``--workers`` workers. Step: the same batches moved to the
device, the datamodule's GPU augmentations (``apply_batch_transforms``), then forward and
backward of UNeXt2 (``--backbone``) with AdamW, as ``VSUNet.training_step`` does.

Loader alone iterates the DataLoader; the full step does everything above. Target: loader
>= 3 x the step's rate (the step never waits on data). On a CUDA device run with
``--device cuda --precision bf16`` (and ``--patch 256 --batch-size 32 --backbone
convnextv2_tiny``): it also reports the GPU utilisation sampled during the timed steps
(target >= 90%).

    uv run python -m benchmarks.cytoland_train [--size 256 --patch 128 --steps 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from benchmarks.common import emit, machine

CHANNELS = ("Phase3D", "Nuclei", "Membrane")
KINDS = ("labelfree_nucleus", "nucleus", "membrane")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--size", type=int, default=256, help="FOV Y/X")
    p.add_argument("--patch", type=int, default=128, help="training patch Y/X")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed batches (after 2 warm-up)")
    p.add_argument("--backbone", default="convnextv2_atto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    return p


def _datamodule(plate: Path, args: argparse.Namespace):
    from viscy_data import HCSDataModule
    from viscy_transforms import BatchedRandFlipd, NormalizeSampled

    keys = [*CHANNELS, "source", "target"]
    return HCSDataModule(
        data_path=str(plate),
        source_channel=CHANNELS[0],
        target_channel=list(CHANNELS[1:]),
        z_window_size=5,
        target_2d=True,
        batch_size=args.batch_size,
        num_workers=args.workers,
        yx_patch_size=(args.patch, args.patch),
        persistent_workers=args.workers > 0,
        normalizations=[NormalizeSampled(list(CHANNELS), "fov_statistics")],
        gpu_augmentations=[BatchedRandFlipd(keys, spatial_axes=[1, 2], allow_missing_keys=True)],
        pin_memory=args.device != "cpu",
    )


def _batches(loader, n: int):
    it = iter(loader)
    while n > 0:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        n -= 1
        yield batch


class _GpuSampler(threading.Thread):
    """Samples GPU utilisation (percent) every 50 ms with NVML while running."""

    def __init__(self, device: torch.device) -> None:
        super().__init__(daemon=True)
        self.device, self.samples, self.error = device, [], None
        self._stop = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                self.samples.append(float(torch.cuda.utilization(self.device)))
                time.sleep(0.05)
        except Exception as exc:  # NVML missing: report why, keep the timing
            self.error = repr(exc)

    def stop(self) -> None:
        self._stop.set()
        self.join()


def run(args: argparse.Namespace) -> dict:
    from cytoland import VSUNet
    from viscy_data.synthetic import write_synthetic_plate

    device = torch.device(args.device)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_cytoland_"))
    plate = workdir / "bench_cytoland.zarr"
    if not plate.exists():
        write_synthetic_plate(
            plate,
            shape=(4, 3, 5, args.size, args.size),
            channel_names=CHANNELS,
            channel_kinds=KINDS,
            wells=(("A", "1"), ("B", "1")),
            fovs_per_well=2,
            cells_per_fov=max(8, (args.size // 32) ** 2 // 2),
        )
    dm = _datamodule(plate, args)
    dm.setup("fit")
    loader = dm.train_dataloader()

    # loader alone
    for _ in _batches(loader, 2):
        pass
    start = time.perf_counter()
    n_loader = sum(b["source"].shape[0] for b in _batches(loader, args.steps))
    loader_s = time.perf_counter() - start

    # full step
    model = VSUNet(
        "UNeXt2",
        {
            "in_channels": 1,
            "out_channels": 2,
            "in_stack_depth": 5,
            "out_stack_depth": 1,
            "backbone": args.backbone,
            "stem_kernel_size": (5, 4, 4),
        },
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step(batch) -> int:
        batch = {
            k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()
        }
        batch = dm.apply_batch_transforms(dm.to_float(batch), dm.gpu_augmentations)
        with autocast:
            loss = model.loss_function(model(batch["source"]), batch["target"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return batch["source"].shape[0]

    for batch in _batches(loader, 2):
        step(batch)
    sampler = _GpuSampler(device) if device.type == "cuda" else None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        sampler.start()
    start = time.perf_counter()
    n_step = sum(step(b) for b in _batches(loader, args.steps))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    step_s = time.perf_counter() - start
    gpu = None
    if sampler is not None:
        sampler.stop()
        gpu = {
            "utilisation_mean_pct": round(statistics.fmean(sampler.samples), 1)
            if sampler.samples
            else None,
            "samples": len(sampler.samples),
            "error": sampler.error,
            "target_pct": 90,
            "max_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2),
        }
        gpu["pass"] = bool(gpu["utilisation_mean_pct"] and gpu["utilisation_mean_pct"] >= 90)

    loader_rate, step_rate = n_loader / loader_s, n_step / step_s
    ratio = loader_rate / step_rate
    return {
        "benchmark": "cytoland training step vs loader",
        "plate": {"shape_tczyx": [4, 3, 5, args.size, args.size], "fovs": 4},
        "loader": {
            "batch_size": args.batch_size,
            "patch_yx": [args.patch, args.patch],
            "z_window": 5,
            "num_workers": args.workers,
            "samples_per_s": round(loader_rate, 2),
        },
        "step": {
            "model": f"UNeXt2 ({args.backbone}), 5 slices -> centre slice, 2 targets",
            "device": str(device),
            "precision": args.precision,
            "samples_per_s": round(step_rate, 2),
        },
        "loader_over_step": round(ratio, 2),
        "target": 3.0,
        "pass": bool(ratio >= 3.0),
        "gpu": gpu,
        "machine": {
            **machine(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "loadavg": list(os.getloadavg()),
            "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
    }


if __name__ == "__main__":
    emit(run(_parser().parse_args()))
