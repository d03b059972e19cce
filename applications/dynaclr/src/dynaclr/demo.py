"""``dynaclr demo``: the product's own pipeline on a synthetic plate, on a CPU, in minutes.

1. write a synthetic time-lapse plate (``viscy_data.synthetic``, phenotype
   ``"relocalization_defocus"``) whose infected cells move a reporter from the cytoplasm into
   the nucleus at matched total intensity, so mean brightness alone does not tell infection,
   under per-frame nuisances (fluorescent debris, and a defocus that inverts the label-free
   contrast of half of the cells) that dominate the features of an untrained encoder;
2. write ``DIR/fit.yml`` and run it exactly as ``dynaclr fit -c DIR/fit.yml`` does:
   ``TripletDataModule`` (normalizations and augmentations on the batch), a
   ``ContrastiveModule`` with a small encoder and NT-Xent + hard-negative concentration;
3. write ``DIR/predict.yml`` and run it as ``dynaclr predict -c DIR/predict.yml`` does, once
   with the trained checkpoint and once with the same encoder before training (same seed,
   no checkpoint), embedding only cells of FOVs kept out of training (``EmbeddingWriter``);
4. ``dynaclr annotate`` the embeddings with the plate's cell table, ``dynaclr reduce``
   (PCA), ``dynaclr evaluate`` (leave-one-FOV-out linear probe, k-NN, temporal smoothness,
   MMD) and ``dynaclr plot``; print the table, write ``results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["DemoConfig", "DemoResult", "main", "run_demo"]

_MARKER = ".dynaclr_demo"
_CHANNELS = ("Phase3D", "GFP")


@dataclass
class DemoConfig:
    """Sizes and hyperparameters of the demo (defaults: a few minutes on 2 CPU cores)."""

    timepoints: int = 10
    image_size: int = 128
    z_slices: int = 1
    wells: tuple[tuple[str, str], ...] = (("A", "1"), ("A", "2"), ("B", "1"), ("B", "2"))
    fovs_per_well: int = 4
    held_out_fovs_per_well: int = 2
    cells_per_fov: int = 12
    infection_onset: int | None = 3
    phenotype: str = "relocalization_defocus"
    initial_patch_size: int = 40
    patch_size: int = 32
    width: int = 8
    embedding_dim: int = 32
    projection_dim: int = 32
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    temperature: float = 0.2
    beta: float = 0.5
    num_workers: int = 1
    seed: int = 0
    #: augmentation strengths, +- the zoom factor and +- the intensity factor: they match
    #: the frame-to-frame nuisances of the synthetic phenotype (cell size, brightness)
    augment_scale: float = 0.1
    augment_intensity: float = 0.3
    #: chance of inverting the label-free channel of a sample: it matches the phenotype's
    #: per-frame defocus (label-free contrast inverted in half of the frames)
    augment_invert_labelfree: float = 0.5

    @classmethod
    def quick(cls) -> DemoConfig:
        """A tiny configuration for smoke tests (seconds, not minutes)."""
        return cls(
            timepoints=4,
            image_size=64,
            wells=(("A", "1"), ("B", "1")),
            fovs_per_well=3,
            held_out_fovs_per_well=2,
            cells_per_fov=4,
            infection_onset=1,
            epochs=1,
            batch_size=16,
            width=4,
        )


@dataclass
class DemoResult:
    """Numbers and files produced by :func:`run_demo`."""

    metrics: dict[str, dict[str, float]]
    files: dict[str, str]
    wall_time_s: float
    config: dict = field(default_factory=dict)

    def table(self) -> str:
        """The result table as Markdown."""
        rows = [
            "| encoder   | held-out probe accuracy | kNN accuracy | temporal smoothness |",
            "|-----------|-------------------------|--------------|---------------------|",
        ]
        for name in ("untrained", "trained"):
            m = self.metrics[name]
            rows.append(
                f"| {name:<9} | {m['probe_accuracy']:>23.3f} | {m['knn_accuracy']:>12.3f} "
                f"| {m['temporal_smoothness']:>19.3f} |"
            )
        return "\n".join(rows)


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / _MARKER).exists():
            raise FileExistsError(
                f"{out} exists and is not empty; choose another --out (the demo never "
                "overwrites files it did not write)"
            )
        if not overwrite:
            raise FileExistsError(f"{out} holds a previous demo run; pass --overwrite to redo it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("written by `dynaclr demo`\n")


def _split_fovs(fov_names: list[str], held_out_per_well: int) -> tuple[list[str], list[str]]:
    """The last ``held_out_per_well`` FOVs of each well are kept out of training."""
    by_well: dict[str, list[str]] = {}
    for name in sorted(fov_names):
        by_well.setdefault(name.rsplit("/", 1)[0], []).append(name)
    train, held_out = [], []
    for fovs in by_well.values():
        k = min(max(1, len(fovs) - held_out_per_well), len(fovs) - 1)
        train += fovs[:k]
        held_out += fovs[k:]
    return train, held_out


def _transforms(keys: list[str], augment: bool, config: DemoConfig | None = None) -> dict:
    """The ``normalizations`` / ``augmentations`` sections of the configs."""
    sections = {
        "normalizations": [
            {
                "class_path": "viscy_transforms.NormalizeSampled",
                "init_args": {
                    "keys": keys,
                    "level": "fov_statistics",
                    "subtrahend": "mean",
                    "divisor": "std",
                },
            }
        ]
    }
    if augment:
        config = config or DemoConfig()
        zoom = [1.0 - config.augment_scale, 1.0 + config.augment_scale]
        sections["augmentations"] = [
            {
                "class_path": "viscy_transforms.BatchedRandAffined",
                "init_args": {
                    "keys": keys,
                    "prob": 0.8,
                    "rotate_range": [3.14, 0.0, 0.0],
                    "scale_range": [zoom, zoom, zoom],
                },
            },
            {
                "class_path": "viscy_transforms.BatchedRandFlipd",
                "init_args": {"keys": keys, "spatial_axes": [1, 2], "prob": 0.5},
            },
            {
                "class_path": "viscy_transforms.BatchedRandScaleIntensityd",
                "init_args": {"keys": keys, "factors": config.augment_intensity, "prob": 0.8},
            },
            {
                "class_path": "viscy_transforms.BatchedRandGaussianNoised",
                "init_args": {"keys": keys, "prob": 0.5, "mean": 0.0, "std": 0.1},
            },
        ]
        if config.augment_invert_labelfree > 0:
            sections["augmentations"].append(
                {
                    "class_path": "viscy_transforms.BatchedRandInvertIntensityd",
                    "init_args": {"keys": [keys[0]], "prob": config.augment_invert_labelfree},
                }
            )
    return sections


def _model(config: DemoConfig) -> dict:
    return {
        "class_path": "dynaclr.engine.ContrastiveModule",
        "init_args": {
            "encoder": {
                "class_path": "dynaclr.tiny_encoder.TinyEncoder",
                "init_args": {
                    "in_channels": len(_CHANNELS),
                    "in_stack_depth": config.z_slices,
                    "width": config.width,
                    "embedding_dim": config.embedding_dim,
                    "projection_dim": config.projection_dim,
                },
            },
            "loss_function": {
                "class_path": "viscy_models.contrastive.loss.NTXentHCL",
                "init_args": {"temperature": config.temperature, "beta": config.beta},
            },
            "lr": config.lr,
            "schedule": "WarmupCosine",
            "warmup_epochs": 1,
            "log_batches_per_epoch": 1,
            "log_samples_per_batch": 4,
            "log_images_every_n_epochs": max(1, config.epochs // 2),
        },
    }


def _data(config: DemoConfig, out: Path, fit: bool, train_fovs, held_out_fovs, cells) -> dict:
    keys = list(_CHANNELS)
    init = {
        "data_path": str(out / "plate.zarr"),
        "tracks_path": str(out / "tracks"),
        "source_channel": keys,
        "z_range": [0, config.z_slices],
        "initial_yx_patch_size": [config.initial_patch_size if fit else config.patch_size] * 2,
        "final_yx_patch_size": [config.patch_size] * 2,
        "batch_size": config.batch_size if fit else 128,
        "num_workers": config.num_workers,
        "seed": config.seed,
        # the synthetic cells lie anywhere, near the border too: keep them all (0.1.0's
        # default drops cells within half a patch of the border)
        "exclude_border_cells": False,
        **_transforms(keys, augment=fit, config=config),
    }
    if fit:
        init.update(
            split_ratio=0.8,
            time_interval=1,
            follow_lineage=True,  # a dividing cell's last frame pairs with a daughter
            return_negative=False,  # NT-Xent: the other cells of the batch are negatives
            fit_exclude_fovs=list(held_out_fovs),
        )
    else:
        tracks = cells[cells["fov_name"].isin(held_out_fovs)][["fov_name", "track_id"]]
        tracks = tracks.drop_duplicates().sort_values(["fov_name", "track_id"])
        init.update(
            predict_cells=True,
            include_fov_names=tracks["fov_name"].tolist(),
            include_track_ids=[int(i) for i in tracks["track_id"]],
        )
    return {"class_path": "viscy_data.triplet.TripletDataModule", "init_args": init}


def write_configs(
    config: DemoConfig, out: Path, train_fovs, held_out_fovs, cells: pd.DataFrame
) -> tuple[Path, Path]:
    """Write ``out/fit.yml`` and ``out/predict.yml`` (both run with the ``dynaclr`` CLI)."""
    import yaml

    progress = {"enable_progress_bar": True}
    fit = {
        "seed_everything": config.seed,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "precision": "32-true",
            "max_epochs": config.epochs,
            "log_every_n_steps": 5,
            "enable_model_summary": False,
            **progress,
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(out), "name": "logs"},
            },
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(out / "checkpoints"), "save_last": True},
                }
            ],
        },
        "model": _model(config),
        "data": _data(config, out, True, train_fovs, held_out_fovs, cells),
    }
    predict = {
        "seed_everything": config.seed,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "precision": "32-true",
            "logger": False,
            "default_root_dir": str(out / "predict"),  # the CLI saves the parsed config here
            "enable_model_summary": False,
            **progress,
            "callbacks": [
                {
                    "class_path": "viscy_utils.callbacks.embedding_writer.EmbeddingWriter",
                    "init_args": {
                        "output_path": str(out / "embeddings_trained.zarr"),
                        "embedding_key": "features",
                    },
                }
            ],
        },
        "model": _model(config),
        "data": _data(config, out, False, train_fovs, held_out_fovs, cells),
        "return_predictions": False,
        "ckpt_path": str(out / "checkpoints" / "last.ckpt"),
    }
    header = (
        "# Written by `dynaclr demo`; run it with `dynaclr {} -c {}`.\n"
        "# It is an ordinary DynaCLR config: copy it and point data_path/tracks_path at your "
        "plate.\n"
    )
    paths = []
    for name, content in (("fit", fit), ("predict", predict)):
        path = out / f"{name}.yml"
        text = header.format(name, path) + yaml.safe_dump(content, sort_keys=False)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        paths.append(path)
    return paths[0], paths[1]


def _write_untrained_override(out: Path, output_path: Path) -> Path:
    """``predict_untrained.yml``: laid over predict.yml, it embeds with the initial weights."""
    import yaml

    override = {
        "trainer": {
            "callbacks": [
                {
                    "class_path": "viscy_utils.callbacks.embedding_writer.EmbeddingWriter",
                    "init_args": {"output_path": str(output_path), "embedding_key": "features"},
                }
            ]
        },
        "ckpt_path": None,
    }
    path = out / "predict_untrained.yml"
    path.write_text(
        "# `dynaclr predict -c predict.yml -c predict_untrained.yml`: the same encoder before\n"
        "# training (same seed, no checkpoint), the baseline of the demo's table.\n"
        + yaml.safe_dump(override, sort_keys=False)
    )
    return path


@contextlib.contextmanager
def _quiet_lightning():
    """Hide Lightning's device banners, tips and warnings irrelevant to the demo."""
    import lightning.pytorch  # noqa: F401 - sets its loggers' levels on import; override after

    names = ("lightning.pytorch", "lightning.fabric", "iohub", "iohub.ngff.nodes")
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        for message in (
            ".*validation_step.*",
            ".*LeafSpec.*",
            ".*smaller than the logging interval.*",
            ".*does not have many workers.*",
            ".*zarr v2.*",
            ".*Transforming to str index.*",
            ".*n_jobs value.*",
        ):
            warnings.filterwarnings("ignore", message=message)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def run_demo(
    out: str | Path = "demo_output",
    config: DemoConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> DemoResult:
    """Run the demo end to end and return its metrics; see the module docstring.

    Parameters
    ----------
    out : str or Path
        Output directory for the plate, configs, checkpoints and embeddings, default
        ``"demo_output"``. It must be empty, missing, or a previous demo run's directory.
    config : DemoConfig, optional
        Sizes, epochs and seed of the run; ``DemoConfig()`` when None.
    overwrite : bool
        Default False; if True, a previous demo run in ``out`` is deleted and redone
        (a non-empty directory the demo did not write is never deleted).
    progress : bool
        Show Lightning's progress bars, default True.
    """
    with _quiet_lightning():
        return _run_demo(Path(out).resolve(), config or DemoConfig(), overwrite, progress)


def _cli(args: list[str]) -> None:
    from dynaclr.cli import main as dynaclr_main

    rc = dynaclr_main(args)
    if rc:
        raise RuntimeError(f"`dynaclr {' '.join(args)}` exited with {rc}")


def _run_demo(out: Path, config: DemoConfig, overwrite: bool, progress: bool) -> DemoResult:
    start = time.perf_counter()
    _prepare_out(out, overwrite)
    from viscy_data.synthetic import write_synthetic_plate

    onset = config.timepoints // 3 if config.infection_onset is None else config.infection_onset
    print(f"[1/5] writing a synthetic plate to {out / 'plate.zarr'} ({config.phenotype})")
    plate = write_synthetic_plate(
        out / "plate.zarr",
        shape=(
            config.timepoints,
            len(_CHANNELS),
            config.z_slices,
            config.image_size,
            config.image_size,
        ),
        channel_names=_CHANNELS,
        wells=config.wells,
        fovs_per_well=config.fovs_per_well,
        seed=config.seed,
        tracks_path=out / "tracks",
        cells_per_fov=config.cells_per_fov,
        infection_onset=onset,
        phenotype=config.phenotype,
    )
    train_fovs, held_out = _split_fovs(list(plate.fov_names), config.held_out_fovs_per_well)
    fit_yml, predict_yml = write_configs(config, out, train_fovs, held_out, plate.cells)
    no_bar = [] if progress else ["--trainer.enable_progress_bar", "false"]

    print(f"[2/5] dynaclr fit -c {fit_yml}  ({len(train_fovs)} FOVs, {config.epochs} epochs)")
    _cli(["fit", "-c", str(fit_yml), *no_bar])

    embeddings = {
        "trained": out / "embeddings_trained.zarr",
        "untrained": out / "embeddings_untrained.zarr",
    }
    print(f"[3/5] dynaclr predict -c {predict_yml}  ({len(held_out)} held-out FOVs)")
    _cli(["predict", "-c", str(predict_yml), *no_bar])
    untrained_yml = _write_untrained_override(out, embeddings["untrained"])
    _cli(["predict", "-c", str(predict_yml), "-c", str(untrained_yml), *no_bar])

    print("[4/5] dynaclr annotate, reduce, evaluate")
    conditions = out / "tracks" / "cell_conditions.csv"
    for path in embeddings.values():
        _cli(["annotate", str(path), str(conditions)])
    for path in embeddings.values():
        _cli(["reduce", str(path), "--method", "pca"])
    report_dir = out / "evaluation"
    _cli(
        [
            "evaluate",
            str(embeddings["untrained"]),
            str(embeddings["trained"]),
            "--name",
            "untrained",
            "--name",
            "trained",
            "--label",
            "infection_state",
            "--condition",
            "condition",
            "--group-by",
            "fov",
            "--out",
            str(report_dir),
            "--seed",
            str(config.seed),
        ]
    )
    evaluation = json.loads((report_dir / "metrics.json").read_text())

    print("[5/5] dynaclr plot")
    figures = out / "figures"
    _cli(
        [
            "plot",
            "scatter",
            str(embeddings["trained"]),
            str(embeddings["untrained"]),
            "--color-by",
            "infection_state",
            "--out",
            str(figures),
        ]
    )
    gallery = figures / "gallery_trained.png"
    _cli(
        [
            "plot",
            "gallery",
            str(embeddings["trained"]),
            "--plate",
            str(plate.path),
            "--out",
            str(gallery),
            "-k",
            "4",
            "--per-cluster",
            "6",
        ]
    )

    metrics = {}
    for name, m in evaluation["models"].items():
        probe = m["probe"]["infection_state"]
        metrics[name] = {
            "probe_accuracy": probe["accuracy"],
            "probe_balanced_accuracy": probe["balanced_accuracy"],
            "knn_accuracy": m["knn"]["infection_state"],
            "temporal_smoothness": m["temporal_smoothness"]["ratio"],
            "n_cells": m["n_cells"],
        }
        for pair, test in m["mmd"].items():
            metrics[name]["mmd2"] = test["mmd2"]
            metrics[name]["mmd_p_value"] = test["p_value"]
            metrics[name]["mmd_pair"] = pair
    result = DemoResult(
        metrics=metrics,
        files={
            "plate": str(plate.path),
            "tracks": str(plate.tracks_path),
            "fit_config": str(fit_yml),
            "predict_config": str(predict_yml),
            "checkpoint": str(out / "checkpoints" / "last.ckpt"),
            "embeddings_trained": str(embeddings["trained"]),
            "embeddings_untrained": str(embeddings["untrained"]),
            "report": str(report_dir / "report.md"),
            "figures": str(figures),
        },
        wall_time_s=time.perf_counter() - start,
        config=asdict(config),
    )
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(asdict(result), indent=2, default=str))
    os.replace(tmp, out / "results.json")
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dynaclr demo``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr demo",
        description="Train and evaluate DynaCLR on a synthetic plate with the product's own "
        "configs and commands, on CPU, in a few minutes.",
    )
    parser.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    parser.add_argument("--overwrite", action="store_true", help="redo a previous demo in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    config = DemoConfig.quick() if args.quick else DemoConfig()
    config.seed = args.seed
    if args.epochs is not None:
        config.epochs = args.epochs
    result = run_demo(args.out, config, overwrite=args.overwrite, progress=not args.no_progress)
    print()
    print(result.table())
    print()
    for name, path in result.files.items():
        print(f"{name:>22}: {path}")
    print(f"{'wall time':>22}: {result.wall_time_s:.0f} s")
    return 0
