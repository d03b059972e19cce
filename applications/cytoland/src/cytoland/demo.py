"""``cytoland demo``: virtual staining end to end on a synthetic plate, on a CPU, in minutes.

1. write a synthetic plate whose label-free channel (``Phase3D``) and two fluorescence
   targets (``Nuclei``, ``Membrane``) are rendered from the same cells
   (:func:`viscy_data.synthetic.write_synthetic_plate` with ``channel_kinds``);
2. write ``fit.yml`` (HCSDataModule with GPU augmentations, VSUNet with a small Unet2d)
   and train it through ``cytoland fit``, keeping one FOV per well out of training;
3. write ``predict.yml`` and predict the held-out FOVs through ``cytoland predict``
   (HCSPredictionWriter, blended tiles), with the trained checkpoint and with the same
   model untrained (same seed, no checkpoint);
4. score Pearson r and SSIM per target for the trained model, the untrained model and the
   trivial baseline (the normalized source itself), print the table, write
   ``results.json`` and a PNG of source | targets | predictions.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DemoConfig", "DemoResult", "fit_config", "main", "predict_config", "run_demo"]

_MARKER = ".cytoland_demo"
SOURCE = "Phase3D"
TARGETS = ("Nuclei", "Membrane")
_KINDS = ("labelfree_nucleus", "nucleus", "membrane")
PREDICTION_SUFFIX = " prediction"


@dataclass
class DemoConfig:
    """Sizes and hyperparameters of the demo (defaults: a few minutes on 2 CPU cores)."""

    timepoints: int = 6
    z_slices: int = 5
    image_size: int = 128
    wells: tuple[tuple[str, str], ...] = (("A", "1"), ("A", "2"), ("B", "1"))
    fovs_per_well: int = 4
    cells_per_fov: int = 12
    patch_size: int = 48
    predict_tile: int = 96
    batch_size: int = 16
    epochs: int = 15
    lr: float = 3e-3
    num_filters: tuple[int, ...] = (8, 16, 32)
    num_workers: int = 0
    seed: int = 42

    @classmethod
    def quick(cls) -> DemoConfig:
        """A small configuration for the test suite (well under a minute)."""
        return cls(
            timepoints=2,
            image_size=64,
            fovs_per_well=4,
            cells_per_fov=6,
            patch_size=32,
            predict_tile=48,
            batch_size=8,
            epochs=6,
        )


@dataclass
class DemoResult:
    """Numbers and files produced by :func:`run_demo`."""

    metrics: dict[str, dict[str, dict[str, float]]]
    files: dict[str, str]
    wall_time_s: float
    config: dict = field(default_factory=dict)

    def table(self) -> str:
        """The metrics as a Markdown table (one row per model, two columns per target)."""
        from viscy_utils.cli_utils import format_markdown_table

        rows = []
        for model in ("trained", "untrained", "baseline"):
            row: dict[str, Any] = {"model": model}
            for target in TARGETS:
                row[f"{target} Pearson r"] = self.metrics[model][target]["pearson"]
                row[f"{target} SSIM"] = self.metrics[model][target]["ssim"]
            rows.append(row)
        return format_markdown_table(rows, float_format=".3f")


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / _MARKER).exists():
            raise FileExistsError(
                f"{out} exists and was not written by `cytoland demo`; choose another --out"
            )
        if not overwrite:
            raise FileExistsError(f"{out} holds an earlier demo; pass --overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("written by `cytoland demo`\n")


def _held_out(fov_names: list[str]) -> list[str]:
    """The last FOV of every well: never seen in training or validation."""
    wells: dict[str, list[str]] = {}
    for name in fov_names:
        wells.setdefault(name.rsplit("/", 1)[0], []).append(name)
    return sorted(sorted(names)[-1] for names in wells.values())


def _normalizations() -> list[dict[str, Any]]:
    return [
        {
            "class_path": "viscy_transforms.NormalizeSampled",
            "init_args": {
                "keys": [SOURCE, *TARGETS],
                "level": "fov_statistics",
                "subtrahend": "mean",
                "divisor": "std",
            },
        }
    ]


def _data(plate: Path, cfg: DemoConfig, **overrides: Any) -> dict[str, Any]:
    keys = [SOURCE, *TARGETS]
    # keys name the channels: one random draw moves the source and every target together
    gpu_keys = {"keys": keys, "allow_missing_keys": True}
    init = {
        "data_path": str(plate),
        "source_channel": [SOURCE],
        "target_channel": list(TARGETS),
        "z_window_size": 1,
        "target_2d": True,
        "split_ratio": 0.75,
        "batch_size": cfg.batch_size,
        "num_workers": cfg.num_workers,
        "yx_patch_size": [cfg.patch_size, cfg.patch_size],
        "normalizations": _normalizations(),
        "gpu_augmentations": [
            {
                "class_path": "viscy_transforms.BatchedRandFlipd",
                "init_args": {**gpu_keys, "spatial_axes": [1, 2], "prob": 0.5},
            },
        ],
        "seed": cfg.seed,
    }
    init.update(overrides)
    return {"class_path": "viscy_data.HCSDataModule", "init_args": init}


def _model(cfg: DemoConfig, **overrides: Any) -> dict[str, Any]:
    init = {
        "architecture": "Unet2d",
        "model_config": {
            "in_channels": 1,
            "out_channels": len(TARGETS),
            "num_blocks": len(cfg.num_filters) - 1,
            "num_filters": list(cfg.num_filters),
            "residual": True,
            "dropout": 0.0,
            "task": "reg",
        },
        "loss_function": {"class_path": "torch.nn.MSELoss"},
        "lr": cfg.lr,
        "schedule": "WarmupCosine",
        "warmup_steps": 10,
        "log_batches_per_epoch": 1,
        "log_samples_per_batch": 2,
        "log_images_every_n_epochs": max(1, cfg.epochs // 3),
        "example_input_yx_shape": [cfg.patch_size, cfg.patch_size],
    }
    init.update(overrides)
    return {"class_path": "cytoland.VSUNet", "init_args": init}


def fit_config(out: Path, plate: Path, held_out: list[str], cfg: DemoConfig) -> dict[str, Any]:
    """The ``fit.yml`` the demo runs (also a template for a first config of your own)."""
    return {
        "seed_everything": cfg.seed,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "precision": "32-true",
            "max_epochs": cfg.epochs,
            "log_every_n_steps": 5,
            "check_val_every_n_epoch": max(1, cfg.epochs // 5),
            "num_sanity_val_steps": 0,
            "enable_progress_bar": True,
            "enable_model_summary": False,
            "default_root_dir": str(out / "fit"),
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(out / "fit"), "name": "logs"},
            },
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {
                        "dirpath": str(out / "fit" / "checkpoints"),
                        "save_last": True,
                        "save_top_k": 0,
                    },
                }
            ],
        },
        "model": _model(cfg),
        "data": _data(plate, cfg, exclude_fov_names=held_out),
    }


def predict_config(
    out: Path,
    plate: Path,
    held_out: list[str],
    cfg: DemoConfig,
    output_store: Path,
    ckpt_path: Path | None,
) -> dict[str, Any]:
    """The ``predict.yml`` the demo runs: whole held-out FOVs, blended tiles."""
    config: dict[str, Any] = {
        "seed_everything": cfg.seed,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "precision": "32-true",
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": True,
            "default_root_dir": str(out / "predict"),
            "callbacks": [
                {
                    "class_path": "viscy_utils.HCSPredictionWriter",
                    "init_args": {
                        "output_store": str(output_store),
                        "prediction_suffix": PREDICTION_SUFFIX,
                        "overwrite": True,
                    },
                }
            ],
        },
        "model": _model(cfg, predict_tile_yx=[cfg.predict_tile, cfg.predict_tile]),
        "data": _data(plate, cfg, include_fov_names=held_out, batch_size=4),
    }
    if ckpt_path is not None:
        config["ckpt_path"] = str(ckpt_path)
    return config


def _write_yaml(config: dict[str, Any], path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _run_cli(command: str, config: Path) -> None:
    from cytoland.cli import main as cytoland_main

    code = cytoland_main([command, "-c", str(config)])
    if code:
        raise RuntimeError(f"`cytoland {command} -c {config}` exited with status {code}")


def _normalized(pos: Any, channels: list[str], names: list[str]) -> np.ndarray:
    """``(T, C, Z, Y, X)`` float32 channels of a FOV z-scored with its FOV statistics."""
    from viscy_data import read_norm_meta

    meta = read_norm_meta(pos)
    data = pos["0"][:]
    out = []
    for name in names:
        stats = meta[name]["fov_statistics"]
        image = data[:, channels.index(name)].astype(np.float32)
        out.append((image - stats["mean"]) / (stats["std"] + 1e-8))
    return np.stack(out, axis=1)


def _score(
    plate: Path, predictions: dict[str, Path], held_out: list[str]
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, np.ndarray]]:
    """Mean Pearson r and SSIM per target over held-out FOVs and timepoints."""
    import torch
    from iohub.ngff import open_ome_zarr
    from tqdm.auto import tqdm

    from cytoland.metrics import pearson_r, ssim

    sums: dict[str, dict[str, dict[str, list[float]]]] = {
        model: {t: {"pearson": [], "ssim": []} for t in TARGETS}
        for model in [*predictions, "baseline"]
    }
    examples: dict[str, np.ndarray] = {}
    stores = {m: open_ome_zarr(p, mode="r") for m, p in predictions.items()}
    try:
        with open_ome_zarr(plate, mode="r") as source_plate:
            channels = list(source_plate.channel_names)
            for name in tqdm(held_out, desc="Scoring held-out FOVs"):
                pos = source_plate[name]
                target = torch.from_numpy(_normalized(pos, channels, list(TARGETS)))
                source = torch.from_numpy(_normalized(pos, channels, [SOURCE]))
                candidates = {"baseline": source.expand_as(target).contiguous()}
                for model, store in stores.items():
                    pred_names = [f"{t}{PREDICTION_SUFFIX}" for t in TARGETS]
                    idx = [store.channel_names.index(c) for c in pred_names]
                    candidates[model] = torch.from_numpy(
                        store[name]["0"].oindex[:, idx].astype(np.float32)
                    )
                for model, pred in candidates.items():
                    r, s = pearson_r(pred, target), ssim(pred, target)
                    for c, t in enumerate(TARGETS):
                        sums[model][t]["pearson"] += r[:, c].tolist()
                        sums[model][t]["ssim"] += s[:, c].tolist()
                if len(examples) < 3:
                    row = [source[0, :, 0].numpy(), target[0, :, 0].numpy()]
                    if "trained" in candidates:
                        row.append(candidates["trained"][0, :, 0].numpy())
                    examples[name] = np.concatenate(row, axis=0)
    finally:
        for store in stores.values():
            store.close()
    metrics = {
        model: {t: {m: float(np.mean(v)) for m, v in per.items()} for t, per in targets.items()}
        for model, targets in sums.items()
    }
    return metrics, examples


def _save_figure(examples: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = [SOURCE, *TARGETS, *(f"{t} prediction" for t in TARGETS)]
    fig, axes = plt.subplots(
        len(examples),
        len(titles),
        figsize=(2.2 * len(titles), 2.2 * len(examples)),
        squeeze=False,
    )
    for i, (name, row) in enumerate(examples.items()):
        for j, image in enumerate(row):
            ax = axes[i, j]
            lo, hi = np.percentile(image, [1, 99.5])
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
        axes[i, 0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def run_demo(
    out: str | Path = "cytoland_demo", cfg: DemoConfig | None = None, overwrite: bool = False
) -> DemoResult:
    """Run the whole demo into ``out`` and return its metrics (see the module docstring)."""
    from viscy_data.synthetic import write_synthetic_plate

    cfg = copy.deepcopy(cfg) if cfg is not None else DemoConfig()
    start = time.perf_counter()
    out = Path(out).resolve()
    _prepare_out(out, overwrite)
    plate_path = out / "plate.zarr"
    plate = write_synthetic_plate(
        plate_path,
        shape=(cfg.timepoints, 1 + len(TARGETS), cfg.z_slices, cfg.image_size, cfg.image_size),
        channel_names=(SOURCE, *TARGETS),
        channel_kinds=_KINDS,
        wells=cfg.wells,
        fovs_per_well=cfg.fovs_per_well,
        cells_per_fov=cfg.cells_per_fov,
        seed=cfg.seed,
        progress=True,
    )
    held_out = _held_out(plate.fov_names)

    fit_yml = _write_yaml(fit_config(out, plate_path, held_out, cfg), out / "fit.yml")
    _run_cli("fit", fit_yml)
    ckpt = out / "fit" / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise RuntimeError(f"training wrote no checkpoint at {ckpt}")

    predictions = {"trained": out / "predictions.zarr", "untrained": out / "untrained.zarr"}
    predict_yml = _write_yaml(
        predict_config(out, plate_path, held_out, cfg, predictions["trained"], ckpt),
        out / "predict.yml",
    )
    _run_cli("predict", predict_yml)
    untrained_yml = _write_yaml(
        predict_config(out, plate_path, held_out, cfg, predictions["untrained"], None),
        out / "predict_untrained.yml",
    )
    _run_cli("predict", untrained_yml)

    metrics, examples = _score(plate_path, predictions, held_out)
    figure = out / "predictions.png"
    _save_figure(examples, figure)
    files = {
        "plate": str(plate_path),
        "fit_config": str(fit_yml),
        "predict_config": str(predict_yml),
        "checkpoint": str(ckpt),
        "predictions": str(predictions["trained"]),
        "untrained_predictions": str(predictions["untrained"]),
        "figure": str(figure),
        "results": str(out / "results.json"),
    }
    result = DemoResult(
        metrics=metrics,
        files=files,
        wall_time_s=round(time.perf_counter() - start, 1),
        config=asdict(cfg),
    )
    payload = {
        "metrics": metrics,
        "wall_time_s": result.wall_time_s,
        "held_out_fovs": held_out,
        "files": files,
        "config": result.config,
    }
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(out / "results.json")
    return result


def main(argv: list[str] | None = None) -> int:
    """``cytoland demo [--out DIR] [--overwrite] [--quick]``."""
    parser = argparse.ArgumentParser(
        prog="cytoland demo",
        description="Train and evaluate a virtual staining model on a synthetic plate (CPU).",
    )
    parser.add_argument("--out", default="cytoland_demo", help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs")
    args = parser.parse_args(argv)
    cfg = DemoConfig.quick() if args.quick else DemoConfig()
    if args.epochs is not None:
        cfg.epochs = args.epochs
    result = run_demo(args.out, cfg, overwrite=args.overwrite)
    print()
    print(result.table())
    print(f"\nwall time {result.wall_time_s:.0f} s; results in {result.files['results']},")
    print(f"images in {result.files['figure']}, predictions in {result.files['predictions']}")
    return 0
