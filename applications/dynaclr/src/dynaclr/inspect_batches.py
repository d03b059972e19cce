"""``dynaclr inspect-batches``: look at what the model will see before training.

Builds the ``data`` section of a Lightning CLI config, draws a few training batches
(through ``on_after_batch_transfer``, so normalizations and augmentations apply) and
writes a PNG grid: one row per sample, anchor/positive/negative crops side by side,
each channel its own tile (middle z slice).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

__all__ = ["instantiate_data_module", "main", "write_batch_grid"]


def instantiate_data_module(config_path: str | Path, overrides: dict[str, Any] | None = None):
    """Instantiate the ``data`` section of a Lightning CLI YAML config.

    Parameters
    ----------
    config_path : str | Path
        YAML with a ``data: {class_path: ..., init_args: {...}}`` section.
    overrides : dict, optional
        ``init_args`` to replace (e.g. ``{"num_workers": 0}``).
    """
    import yaml
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    config_path = Path(config_path)
    with open(config_path) as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict) or "data" not in config:
        raise KeyError(f"{config_path} has no 'data' section")
    data = dict(config["data"])
    data["init_args"] = {**data.get("init_args", {}), **(overrides or {})}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--data", type=LightningDataModule)
    namespace = parser.parse_object({"data": data})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    return instantiate(namespace).data


def _transferred(data_module, batch: dict) -> dict:
    hook = getattr(data_module, "on_after_batch_transfer", None)
    return hook(batch, 0) if callable(hook) else batch


def _attach_training_trainer(data_module) -> None:
    """Give the data module a CPU trainer in its training stage, so that
    ``on_after_batch_transfer`` applies the training augmentations."""
    from lightning.pytorch import Trainer

    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.training = True
    data_module.trainer = trainer


def write_batch_grid(
    data_module,
    output_path: str | Path,
    num_batches: int = 1,
    samples_per_batch: int = 8,
    augment: bool = True,
) -> Path:
    """Draw training batches from ``data_module`` and save them as a PNG grid.

    With ``augment`` the batches pass through the training augmentations, as the model
    sees them; otherwise only through the normalizations.
    """
    import torch
    from matplotlib import pyplot as plt

    from dynaclr.engine import render_triplet_grid

    data_module.setup("fit")
    if augment:
        _attach_training_trainer(data_module)
    collected: dict[str, list[torch.Tensor]] = {}
    for i, batch in enumerate(data_module.train_dataloader()):
        if i >= num_batches:
            break
        batch = _transferred(data_module, batch)
        for key in ("anchor", "positive", "negative"):
            if key in batch:
                collected.setdefault(key, []).append(batch[key][:samples_per_batch].cpu())
    if not collected:
        raise RuntimeError("The training dataloader yielded no batches")
    views = {k: torch.cat(v) for k, v in collected.items()}
    grid = render_triplet_grid(views, max_samples=views["anchor"].shape[0])
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(f".{output_path.stem}.tmp.png")
    plt.imsave(tmp, grid)
    os.replace(tmp, output_path)
    return output_path


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dynaclr inspect-batches``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr inspect-batches",
        description="Write a PNG grid of anchor/positive/negative crops drawn from a config.",
    )
    parser.add_argument("-c", "--config", required=True, help="fit YAML with a data section")
    parser.add_argument("-o", "--out", default="batches.png", help="PNG to write")
    parser.add_argument("--num-batches", type=int, default=1)
    parser.add_argument("--samples-per-batch", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=0, help="override data num_workers")
    parser.add_argument(
        "--no-augment", action="store_true", help="show normalized crops without augmentations"
    )
    args = parser.parse_args(argv)
    data_module = instantiate_data_module(args.config, {"num_workers": args.num_workers})
    path = write_batch_grid(
        data_module, args.out, args.num_batches, args.samples_per_batch, not args.no_augment
    )
    print(f"wrote {path}")
    return 0
