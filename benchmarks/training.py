"""GPU-bound training benchmark: ``dynaclr fit`` and ``cytoland fit`` for a fixed number of steps.

Each application's ``fit`` command runs as a user runs it (a subprocess, a YAML config, the
product's DataModule, transforms and LightningModule), on a synthetic plate written here
(and, by default, its ``viscy rechunk`` copy), with:

* ``dynaclr``: the example ``applications/dynaclr/examples/configs/fit.yml`` (its loader
  settings, normalizations and GPU augmentations), with a ContrastiveEncoder convnext_tiny on
  2 channels x 5 Z x 160^2 crops (192^2 read for the affine augmentation),
* ``cytoland`` (only when the ``cytoland`` application is importable): VSUNet with UNeXt2
  (convnextv2_tiny) regressing GFP from 5 Z slices of Phase3D, 256^2 patches, HCSDataModule,

and on CUDA ``bf16-mixed`` precision on one device. A Lightning profiler
(``_training_probe.TrainingProbe``) reports, after ``--warmup`` steps: samples/s, step time,
the fraction of the step time spent waiting for the next batch, and, on CUDA, the GPU
utilisation sampled with NVML (``nvidia-ml-py``). Targets on a GPU: utilisation >= 90 % and
data wait < 5 % of step time. On CPU it runs smaller (batch and steps) and reports the same
fields except utilisation.

Run: ``uv run python -m benchmarks.training [--app dynaclr cytoland] [--steps 60]``;
on the GPU machine through ``benchmarks/gpu_training.sh`` (under 5 minutes in all).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DYNACLR_FIT = REPO / "applications/dynaclr/examples/configs/fit.yml"
CHANNELS = ("Phase3D", "GFP")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _plate(workdir: Path, shape: tuple[int, ...], cells: int, layout: str) -> tuple[Path, Path]:
    tag = "x".join(str(s) for s in shape)
    original = workdir / f"train_{tag}.zarr"
    tracks = workdir / f"train_{tag}_tracks"
    if not original.exists():
        from viscy_data.synthetic import write_synthetic_plate

        write_synthetic_plate(
            original,
            shape=shape,
            channel_names=CHANNELS,
            version="0.5",
            seed=0,
            tracks_path=tracks,
            cells_per_fov=cells,
        )
    if layout == "original":
        return original, tracks
    rechunked = workdir / f"train_{tag}_rechunked.zarr"
    if not rechunked.exists():
        from viscy_utils.rechunk import rechunk_store

        rechunk_store(original, rechunked, progress=False)
    return rechunked, tracks


def _trainer(cuda: bool, steps: int, probe: dict[str, Any]) -> dict[str, Any]:
    return {
        "accelerator": "gpu" if cuda else "cpu",
        "devices": 1,
        "strategy": "auto",
        "num_nodes": 1,
        "precision": "bf16-mixed" if cuda else "32-true",
        "max_steps": steps,
        "max_epochs": -1,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "callbacks": [],
        "profiler": {"class_path": "benchmarks._training_probe.TrainingProbe", "init_args": probe},
    }


def dynaclr_config(
    plate: Path, tracks: Path, args: argparse.Namespace, cuda: bool, out: Path
) -> dict[str, Any]:
    """The example fit.yml, pointed at the benchmark plate, with 2 x 5 x 160^2 crops."""
    config = copy.deepcopy(yaml.safe_load(DYNACLR_FIT.read_text()))
    data = config["data"]["init_args"]
    data.update(
        {
            "data_path": str(plate),
            "tracks_path": str(tracks),
            "source_channel": list(CHANNELS),
            "z_range": [1, 6],
            "initial_yx_patch_size": [192, 192],
            "final_yx_patch_size": [160, 160],
        }
    )
    data.pop("fit_exclude_fovs", None)
    if args.batch_size:
        data["batch_size"] = args.batch_size
    elif not cuda:
        data["batch_size"] = 4
    if args.num_workers is not None:
        data["num_workers"] = args.num_workers
    encoder = config["model"]["init_args"]["encoder"]["init_args"]
    encoder.update(
        {
            "backbone": "convnext_tiny",
            "in_channels": 2,
            "in_stack_depth": 5,
            "stem_kernel_size": [5, 4, 4],
            "stem_stride": [5, 4, 4],
        }
    )
    config["model"]["init_args"]["log_batches_per_epoch"] = 0
    probe = {"out_path": str(out), "batch_size": data["batch_size"], "warmup_steps": args.warmup}
    config["trainer"] = _trainer(cuda, args.steps, probe)
    return config


def cytoland_config(plate: Path, args: argparse.Namespace, cuda: bool, out: Path) -> dict:
    """VSUNet / UNeXt2 on HCSDataModule: Phase3D (5 Z) -> GFP, 256^2 patches."""
    batch = args.batch_size or (16 if cuda else 2)
    workers = args.num_workers if args.num_workers is not None else (8 if cuda else 2)
    norm = {
        "class_path": "viscy_transforms.NormalizeSampled",
        "init_args": {
            "keys": list(CHANNELS),
            "level": "fov_statistics",
            "subtrahend": "median",
            "divisor": "iqr",
        },
    }
    return {
        "seed_everything": 42,
        "trainer": _trainer(
            cuda,
            args.steps,
            {"out_path": str(out), "batch_size": batch, "warmup_steps": args.warmup},
        ),
        "model": {
            "class_path": "cytoland.engine.VSUNet",
            "init_args": {
                "architecture": "UNeXt2",
                "model_config": {
                    "in_channels": 1,
                    "out_channels": 1,
                    "in_stack_depth": 5,
                    "backbone": "convnextv2_tiny",
                    "stem_kernel_size": [5, 4, 4],
                    "pretrained": False,
                },
                "lr": 0.0002,
                "schedule": "Constant",
                "log_batches_per_epoch": 0,
                "example_input_yx_shape": [256, 256],
            },
        },
        "data": {
            "class_path": "viscy_data.hcs.HCSDataModule",
            "init_args": {
                "data_path": str(plate),
                "source_channel": "Phase3D",
                "target_channel": "GFP",
                "z_window_size": 5,
                "batch_size": batch,
                "num_workers": workers,
                "yx_patch_size": [256, 256],
                "normalizations": [norm],
                "pin_memory": cuda,
            },
        },
    }


def _run_fit(app: str, config: dict, workdir: Path, out: Path, timeout: int) -> dict[str, Any]:
    config_path = workdir / f"{app}_fit.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    out.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    command = [sys.executable, "-m", f"{app}.cli", "fit", "-c", str(config_path)]
    start = time.perf_counter()
    proc = subprocess.run(
        command, env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout
    )
    wall = time.perf_counter() - start
    result: dict[str, Any] = {"command": " ".join(command[1:]), "wall_s": round(wall, 1)}
    if proc.returncode != 0 or not out.exists():
        result["error"] = f"exit status {proc.returncode}"
        result["stderr_tail"] = (proc.stderr or proc.stdout)[-3000:]
        return result
    result.update(json.loads(out.read_text()))
    data = config["data"]["init_args"]
    result["loader"] = {
        k: data.get(k) for k in ("batch_size", "num_workers", "cache_pool_bytes", "cache_bytes")
    }
    if result.get("cuda"):
        util = result.get("gpu_utilization_mean_pct")
        result["targets"] = {"gpu_utilization_min_pct": 90, "data_wait_fraction_max": 0.05}
        result["pass"] = bool(
            util is not None and util >= 90 and result["data_wait_fraction"] < 0.05
        )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app", nargs="+", default=["dynaclr", "cytoland"])
    parser.add_argument("--workdir", type=Path, default=None, help="plates and configs (kept)")
    parser.add_argument("--steps", type=int, default=None, help="total steps (60 GPU, 5 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (10 GPU, 1 CPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--num-workers", type=int, default=None, help="default: the config's")
    parser.add_argument(
        "--layout",
        choices=("rechunked", "original"),
        default="rechunked",
        help="train on the `viscy rechunk` copy (default) or on iohub's default chunks",
    )
    parser.add_argument(
        "--shape", default=None, help="plate T,C,Z,Y,X (GPU: 8,2,8,1024,1024; CPU: 4,2,8,384,384)"
    )
    parser.add_argument("--cells-per-fov", type=int, default=32)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per fit")


def run(args: argparse.Namespace) -> dict[str, Any]:
    cuda = _cuda()
    if args.steps is None:
        args.steps = 60 if cuda else 5
    if args.warmup is None:
        args.warmup = 10 if cuda else 1
    if args.warmup >= args.steps:
        raise SystemExit(f"--warmup ({args.warmup}) must be below --steps ({args.steps})")
    shape_text = args.shape or ("8,2,8,1024,1024" if cuda else "4,2,8,384,384")
    shape = tuple(int(v) for v in shape_text.split(","))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_training_"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    plate, tracks = _plate(workdir, shape, args.cells_per_fov, args.layout)
    results: dict[str, Any] = {
        "benchmark": "training",
        "cuda": cuda,
        "plate": {"shape_tczyx": list(shape), "fovs": 4, "layout": args.layout},
        "plate_s": round(time.perf_counter() - start, 1),
        "steps": args.steps,
        "warmup_steps": args.warmup,
    }
    for app in args.app:
        out = workdir / f"{app}_probe.json"
        if app == "dynaclr":
            config = dynaclr_config(plate, tracks, args, cuda, out)
        elif app == "cytoland":
            if importlib.util.find_spec("cytoland") is None:
                results[app] = {"skipped": "the cytoland application is not installed"}
                continue
            config = cytoland_config(plate, args, cuda, out)
        else:
            raise SystemExit(f"unknown app {app!r} (dynaclr, cytoland)")
        results[app] = _run_fit(app, config, workdir, out, args.timeout)
    results["load_average"] = [round(v, 2) for v in os.getloadavg()]
    from benchmarks.common import machine

    results["machine"] = machine()
    if cuda:
        import torch

        results["machine"]["gpu"] = torch.cuda.get_device_name()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    failed = [app for app in args.app if "error" in result.get(app, {})]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
