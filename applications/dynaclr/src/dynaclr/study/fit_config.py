"""``dynaclr generate-fit-config``: a complete multi-experiment ``fit.yml``.

Reads an experiments registry YAML (the format of ``ExperimentRegistry.from_yaml``,
paths checked) and a model recipe, and writes a ``fit.yml`` for ``dynaclr fit`` with
``MultiExperimentDataModule``: the encoder's ``in_channels`` / ``in_stack_depth`` follow
the registry's training channels and the recipe's ``z_range``, normalization keys are the
training channels, channel dropout acts on the fluorescence channels.

A recipe is a built-in name (``convnext_tiny``: the DynaCLR encoder for GPUs; ``tiny``:
``TinyEncoder``, trains on a CPU) or a YAML file with any of::

    base: convnext_tiny          # built-in recipe it starts from
    encoder: {class_path: ..., init_args: {...}}   # in_channels/in_stack_depth are set
    loss_function: {class_path: ..., init_args: {...}}
    model: {lr: 0.0002, schedule: WarmupCosine, ...}   # other ContrastiveModule args
    data: {z_range: [0, 1], yx_patch_size: [192, 192], batch_size: 64, ...}
    trainer: {max_epochs: 100, precision: bf16-mixed, ...}
    output_dir: runs/my_model     # logs and checkpoints
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Any

import yaml

__all__ = ["RECIPES", "build_fit_config", "main"]

_LABEL_FREE = ("phase", "bf", "bright", "dic", "retardance")

RECIPES: dict[str, dict[str, Any]] = {
    "convnext_tiny": {
        "encoder": {
            "class_path": "viscy_models.contrastive.encoder.ContrastiveEncoder",
            "init_args": {
                "backbone": "convnext_tiny",
                "stem_kernel_size": [1, 4, 4],
                "stem_stride": [1, 4, 4],
                "embedding_dim": 768,
                "projection_dim": 128,
                "drop_path_rate": 0.0,
            },
        },
        "loss_function": {
            "class_path": "viscy_models.contrastive.loss.NTXentHCL",
            "init_args": {"temperature": 0.2, "beta": 0.5},
        },
        "model": {"lr": 0.0002, "schedule": "WarmupCosine", "warmup_epochs": 3},
        "data": {
            "z_range": [0, 1],
            "yx_patch_size": [192, 192],
            "final_yx_patch_size": [160, 160],
            "tau_range": [0.5, 2.0],
            "batch_size": 64,
            "num_workers": 4,
            "experiment_aware": True,
            "condition_balanced": True,
            "channel_dropout_prob": 0.5,
        },
        "trainer": {"max_epochs": 100, "precision": "32-true", "log_every_n_steps": 10},
        "output_dir": "runs/dynaclr",
    },
    "tiny": {
        "base": "convnext_tiny",
        "encoder": {
            "class_path": "dynaclr.tiny_encoder.TinyEncoder",
            "init_args": {"width": 8, "embedding_dim": 32, "projection_dim": 16},
        },
        "model": {"lr": 0.001, "schedule": "Constant"},
        "data": {
            "yx_patch_size": [40, 40],
            "final_yx_patch_size": [32, 32],
            "batch_size": 16,
            "num_workers": 1,
        },
        "trainer": {"max_epochs": 5},
        "output_dir": "runs/dynaclr_tiny",
    },
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; a ``class_path`` that changes replaces the whole node."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if (
            isinstance(value, dict)
            and isinstance(out.get(key), dict)
            and value.get("class_path", out[key].get("class_path")) == out[key].get("class_path")
        ):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_recipe(recipe: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A recipe (built-in name, YAML path or dict) merged onto the recipes it is based on."""
    if isinstance(recipe, dict):
        spec, source = recipe, "recipe"
    elif str(recipe) in RECIPES:
        spec, source = RECIPES[str(recipe)], f"recipe {recipe!r}"
    else:
        path = Path(recipe)
        if not path.is_file():
            raise FileNotFoundError(
                f"Recipe {recipe!r} is neither a built-in ({sorted(RECIPES)}) nor a file"
            )
        spec, source = yaml.safe_load(path.read_text()) or {}, f"recipe {path}"
    if not isinstance(spec, dict):
        raise ValueError(f"{source} must be a mapping")
    allowed = {"base", "encoder", "loss_function", "model", "data", "trainer", "output_dir"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"{source} has unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    base = spec.get("base")
    if base is None:
        return copy.deepcopy(spec)
    if base not in RECIPES:
        raise ValueError(f"{source}: base {base!r} is not a built-in recipe {sorted(RECIPES)}")
    merged = _merge(load_recipe(base), {k: v for k, v in spec.items() if k != "base"})
    merged.pop("base", None)
    return merged


def build_fit_config(
    experiments_yaml: str | Path,
    recipe: str | Path | dict[str, Any] = "convnext_tiny",
    val_experiments: list[str] | None = None,
) -> dict[str, Any]:
    """The ``fit.yml`` content (a dict) for an experiments registry and a recipe."""
    from dynaclr.experiment import ExperimentRegistry

    experiments_yaml = Path(experiments_yaml).resolve()
    registry = ExperimentRegistry.from_yaml(experiments_yaml)
    names = list(registry.names)
    spec = load_recipe(recipe)
    data = dict(spec.get("data") or {})
    if val_experiments is None:
        val_experiments = data.pop("val_experiments", None)
        if val_experiments is None:
            val_experiments = names[-1:] if len(names) > 1 else []
    data.pop("val_experiments", None)
    unknown = sorted(set(val_experiments) - set(names))
    if unknown:
        raise ValueError(f"val_experiments {unknown} are not in {experiments_yaml} ({names})")
    if set(val_experiments) >= set(names):
        raise ValueError("Every experiment is a validation experiment: none is left to train on")
    channels = list(registry.active_channels)
    z_range = data.get("z_range") or [0, 1]
    data["z_range"] = [int(z_range[0]), int(z_range[1])]
    fluorescence = [
        i for i, c in enumerate(channels) if not any(k in c.lower() for k in _LABEL_FREE)
    ]
    data.setdefault("channel_dropout_channels", fluorescence)
    if not data["channel_dropout_channels"]:
        data["channel_dropout_prob"] = 0.0
    normalize = {
        "class_path": "viscy_transforms.NormalizeSampled",
        "init_args": {
            "keys": channels,
            "level": "fov_statistics",
            "subtrahend": "mean",
            "divisor": "std",
        },
    }
    data.setdefault("normalizations", [normalize])
    data.setdefault(
        "augmentations",
        [
            {
                "class_path": "viscy_transforms.BatchedRandAffined",
                "init_args": {
                    "keys": channels,
                    "prob": 0.8,
                    "rotate_range": [3.14, 0.0, 0.0],
                    "scale_range": [[0.9, 1.1], [0.9, 1.1], [0.9, 1.1]],
                },
            },
            {
                "class_path": "viscy_transforms.BatchedRandFlipd",
                "init_args": {"keys": channels, "spatial_axes": [1, 2], "prob": 0.5},
            },
        ],
    )
    encoder = copy.deepcopy(spec["encoder"])
    encoder.setdefault("init_args", {})
    encoder["init_args"]["in_channels"] = len(channels)
    encoder["init_args"]["in_stack_depth"] = data["z_range"][1] - data["z_range"][0]
    output_dir = str(spec.get("output_dir", "runs/dynaclr"))
    trainer = {
        "accelerator": "auto",
        "strategy": "auto",
        "devices": "auto",
        "num_nodes": 1,
        "use_distributed_sampler": False,
        **(spec.get("trainer") or {}),
    }
    trainer.setdefault(
        "logger",
        {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": output_dir, "name": "logs"},
        },
    )
    trainer.setdefault(
        "callbacks",
        [
            {
                "class_path": "lightning.pytorch.callbacks.LearningRateMonitor",
                "init_args": {"logging_interval": "epoch"},
            },
            {
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {
                    "dirpath": f"{output_dir}/checkpoints",
                    "monitor": "loss/val" if val_experiments else "loss/train_epoch",
                    "mode": "min",
                    "save_top_k": 2,
                    "save_last": True,
                },
            },
        ],
    )
    model_args = {"encoder": encoder}
    if spec.get("loss_function") is not None:
        model_args["loss_function"] = copy.deepcopy(spec["loss_function"])
    model_args.update(spec.get("model") or {})
    return {
        "seed_everything": 42,
        "trainer": trainer,
        "model": {"class_path": "dynaclr.engine.ContrastiveModule", "init_args": model_args},
        "data": {
            "class_path": "dynaclr.datamodule.MultiExperimentDataModule",
            "init_args": {
                "experiments_yaml": str(experiments_yaml),
                "val_experiments": list(val_experiments),
                **data,
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    """``dynaclr generate-fit-config``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr generate-fit-config",
        description=(
            "Write a complete multi-experiment fit.yml from an experiments registry YAML "
            f"and a model recipe (built-in: {', '.join(RECIPES)}; or a recipe YAML)."
        ),
    )
    parser.add_argument("--experiments", required=True, help="experiments registry YAML")
    parser.add_argument("--recipe", default="convnext_tiny", help="built-in name or YAML file")
    parser.add_argument("--val-experiments", nargs="*", help="held-out experiments")
    parser.add_argument("--out", required=True, help="fit.yml to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        if out.exists() and not args.overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
        config = build_fit_config(args.experiments, args.recipe, args.val_experiments)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, TypeError) as err:
        print(f"dynaclr generate-fit-config: error: {err}", file=sys.stderr)
        return 1
    header = (
        f"# Written by dynaclr generate-fit-config from {args.experiments} and recipe "
        f"{args.recipe}.\n# Run: dynaclr fit -c {out.name}\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(header + yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, out)
    print(f"Wrote {out}")
    return 0
