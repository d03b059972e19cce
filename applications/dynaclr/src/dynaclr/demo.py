"""``dynaclr demo``: the whole DynaCLR loop on a synthetic plate, on a CPU, in minutes.

1. write a synthetic time-lapse plate with two conditions (``viscy_data.synthetic``):
   infected cells gain a fluorescent reporter and change shape after an onset time;
2. train a small encoder with NT-Xent + hard-negative concentration (``NTXentHCL``),
   positives being the same cell one frame later;
3. embed every cell of held-out FOVs (AnnData zarr), with the trained encoder and with
   the same encoder before training;
4. fit a linear probe of the condition on held-out FOVs, measure temporal smoothness,
   and print a table; write a PCA scatter and a triplet grid as PNG.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DemoConfig", "DemoResult", "main", "run_demo"]

_MARKER = ".dynaclr_demo"


@dataclass
class DemoConfig:
    """Sizes and hyperparameters of the demo (defaults: ~3-5 minutes on 2 CPU cores)."""

    timepoints: int = 12
    image_size: int = 128
    z_slices: int = 1
    wells: tuple[tuple[str, str], ...] = (("A", "1"), ("A", "2"), ("B", "1"), ("B", "2"))
    fovs_per_well: int = 4
    cells_per_fov: int = 8
    infection_onset: int | None = 2
    crop_size: int = 40
    patch_size: int = 32
    width: int = 8
    embedding_dim: int = 64
    projection_dim: int = 32
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    temperature: float = 0.2
    beta: float = 0.5
    seed: int = 0

    @classmethod
    def quick(cls) -> DemoConfig:
        """A tiny configuration for smoke tests (seconds, not minutes)."""
        return cls(
            timepoints=4,
            image_size=64,
            fovs_per_well=2,
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
            "| encoder   | probe accuracy | temporal smoothness |",
            "|-----------|----------------|---------------------|",
        ]
        for name in ("untrained", "trained"):
            m = self.metrics[name]
            rows.append(
                f"| {name:<9} | {m['probe_accuracy']:>14.3f} | {m['temporal_smoothness']:>19.3f} |"
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


def _split_fovs(fov_names: list[str]) -> tuple[list[str], list[str]]:
    """First half of each well's FOVs for training, the rest held out."""
    by_well: dict[str, list[str]] = {}
    for name in sorted(fov_names):
        by_well.setdefault(name.rsplit("/", 1)[0], []).append(name)
    train, held_out = [], []
    for fovs in by_well.values():
        k = max(1, len(fovs) // 2)
        train += fovs[:k]
        held_out += fovs[k:]
    return train, held_out


def _label(obs: pd.DataFrame, cells: pd.DataFrame) -> np.ndarray:
    """Infection state of each embedded cell, looked up in the generator's cell table.

    A cell of an infected well counts as infected from its onset on (before it, it
    looks like an uninfected cell).
    """
    keys = ["fov_name", "track_id", "t"]
    left = obs[keys].copy()
    right = cells[[*keys, "infection_state"]].copy()
    for df in (left, right):
        df["fov_name"] = df["fov_name"].astype(str).str.strip("/")
        df["track_id"] = df["track_id"].astype(np.int64)
        df["t"] = df["t"].astype(np.int64)
    merged = left.merge(right, on=keys, how="left", validate="many_to_one")
    if merged["infection_state"].isna().any():
        missing = merged[merged["infection_state"].isna()].iloc[0]
        raise KeyError(f"Embedded cell {dict(missing[keys])} is not in the plate's cell table")
    return merged["infection_state"].to_numpy(dtype=str)


def _probe_accuracy(x: np.ndarray, labels: np.ndarray, fovs: np.ndarray, seed: int) -> float:
    """Train a logistic-regression probe on half of the held-out FOVs, score the rest.

    FOVs are split within each well so both conditions appear on both sides.
    """
    from viscy_utils.evaluation import build_linear_classifier

    wells = np.array([f.rsplit("/", 1)[0] for f in fovs])
    test = np.zeros(len(fovs), dtype=bool)
    for well in np.unique(wells):
        well_fovs = sorted(set(fovs[wells == well]))
        if len(well_fovs) > 1:
            test |= np.isin(fovs, well_fovs[len(well_fovs) // 2 :])
    if not test.any() or test.all():  # one FOV per well: split cells by track instead
        test = np.arange(len(fovs)) % 2 == 1
    probe = build_linear_classifier(seed=seed)
    probe.fit(x[~test], labels[~test])
    return float(np.mean(probe.predict(x[test]) == labels[test]))


def _embed(module, dataset, batch_size: int, out_path: Path, progress: bool) -> pd.DataFrame:
    """Predict embeddings with a Lightning Trainer and write them with EmbeddingWriter."""
    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader

    from viscy_utils.callbacks import EmbeddingWriter

    writer = EmbeddingWriter(output_path=out_path)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[writer],
        enable_progress_bar=progress,
        enable_model_summary=False,
    )
    module.eval()
    trainer.predict(module, DataLoader(dataset, batch_size=batch_size), return_predictions=False)
    import anndata

    return anndata.read_zarr(out_path)


def _save_triplet_figure(grid: np.ndarray, channels: tuple[str, ...], path: Path) -> None:
    from matplotlib.figure import Figure

    height, width = grid.shape[:2]
    fig = Figure(figsize=(width / 40 + 0.5, height / 40 + 0.8), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(
        f"anchor | positive (same cell, t+1) | negative\n(each: {', '.join(channels)})",
        fontsize="small",
    )
    fig.savefig(path, format="png", bbox_inches="tight")


def _evaluate(adata, cells: pd.DataFrame, seed: int) -> dict[str, float]:
    from viscy_utils.evaluation import temporal_smoothness

    obs = adata.obs.reset_index(drop=True)
    x = np.asarray(adata.X, dtype=np.float32)
    fovs = obs["fov_name"].astype(str).str.strip("/").to_numpy()
    labels = _label(obs, cells)
    smooth = temporal_smoothness(
        x, (obs["fov_name"].astype(str) + "/" + obs["track_id"].astype(str)).to_numpy(), obs["t"]
    )
    return {
        "probe_accuracy": _probe_accuracy(x, labels, fovs, seed),
        "temporal_smoothness": smooth.ratio,
        "adjacent_distance": smooth.adjacent_distance,
        "random_distance": smooth.random_distance,
    }


@contextlib.contextmanager
def _quiet_lightning():
    """Hide Lightning's device banners, tips and warnings irrelevant to the demo."""
    import lightning.pytorch  # noqa: F401 - sets its loggers' levels on import; override after

    names = ("lightning.pytorch", "lightning.fabric", "iohub")
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
    """Run the demo end to end and return its metrics; see the module docstring."""
    with _quiet_lightning():
        return _run_demo(Path(out), config or DemoConfig(), overwrite, progress)


def _run_demo(out: Path, config: DemoConfig, overwrite: bool, progress: bool) -> DemoResult:
    start = time.perf_counter()
    _prepare_out(out, overwrite)

    import torch
    from lightning.pytorch import Trainer, seed_everything
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.data import DataLoader

    from dynaclr._demo_data import CellCropDataset, TemporalTripletDataset, load_cell_crops
    from dynaclr.engine import ContrastiveModule, render_triplet_grid
    from dynaclr.tiny_encoder import TinyEncoder
    from viscy_data.synthetic import write_synthetic_plate
    from viscy_models.contrastive.loss import NTXentHCL
    from viscy_utils.evaluation import compute_pca, plot_embedding

    channels = ("Phase3D", "GFP")
    onset = config.infection_onset
    if onset is None:
        onset = config.timepoints // 3
    print(f"[1/5] writing a synthetic plate to {out / 'plate.zarr'}")
    plate = write_synthetic_plate(
        out / "plate.zarr",
        shape=(
            config.timepoints,
            len(channels),
            config.z_slices,
            config.image_size,
            config.image_size,
        ),
        channel_names=channels,
        wells=config.wells,
        fovs_per_well=config.fovs_per_well,
        seed=config.seed,
        tracks_path=out / "tracks",
        cells_per_fov=config.cells_per_fov,
        infection_onset=onset,
    )
    train_fovs, held_out_fovs = _split_fovs(list(plate.fov_names))
    crops, cells = load_cell_crops(plate.path, plate.cells, config.crop_size, progress=progress)
    is_train = cells["fov_name"].isin(train_fovs).to_numpy()

    print(f"[2/5] training TinyEncoder with NTXentHCL on {len(train_fovs)} FOVs")
    seed_everything(config.seed, workers=True, verbose=False)
    encoder = TinyEncoder(
        in_channels=len(channels),
        in_stack_depth=config.z_slices,
        width=config.width,
        embedding_dim=config.embedding_dim,
        projection_dim=config.projection_dim,
    )
    untrained = copy.deepcopy(encoder)
    train_set = TemporalTripletDataset(
        crops[is_train], cells[is_train], config.patch_size, augment=True, seed=config.seed
    )
    module = ContrastiveModule(
        encoder,
        NTXentHCL(temperature=config.temperature, beta=config.beta),
        lr=config.lr,
        schedule="WarmupCosine",
        warmup_epochs=1,
        log_images_every_n_epochs=max(1, config.epochs // 2),
        log_batches_per_epoch=2,
        log_samples_per_batch=4,
    )
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=config.epochs,
        logger=TensorBoardLogger(out, name="logs"),
        callbacks=[ModelCheckpoint(dirpath=out / "checkpoints", save_last=True)],
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=5,
        limit_val_batches=0,
    )
    loader = DataLoader(
        train_set,
        batch_size=min(config.batch_size, len(train_set)),
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(config.seed),
    )
    trainer.fit(module, loader)

    print(f"[3/5] embedding {int((~is_train).sum())} cells of {len(held_out_fovs)} held-out FOVs")
    predict_set = CellCropDataset(crops[~is_train], cells[~is_train], config.patch_size)
    embeddings = {
        "trained": _embed(module, predict_set, 128, out / "embeddings_trained.zarr", progress),
        "untrained": _embed(
            ContrastiveModule(untrained),
            predict_set,
            128,
            out / "embeddings_untrained.zarr",
            progress,
        ),
    }

    print("[4/5] linear probe of the condition and temporal smoothness")
    metrics = {name: _evaluate(adata, cells, config.seed) for name, adata in embeddings.items()}

    print("[5/5] figures")
    trained = embeddings["trained"]
    coords, variance = compute_pca(np.asarray(trained.X, dtype=np.float32), n_components=2)
    pca_png = out / "pca_condition.png"
    plot_embedding(
        coords,
        labels=_label(trained.obs.reset_index(drop=True), cells),
        output_path=pca_png,
        title=f"Held-out cells, trained encoder (PC1+PC2: {variance.sum():.0%} of variance)",
        axis_prefix="PC",
    )
    batch = next(iter(DataLoader(train_set, batch_size=8, shuffle=True)))
    grid_png = out / "triplets.png"
    _save_triplet_figure(render_triplet_grid(batch, max_samples=8), channels, grid_png)

    result = DemoResult(
        metrics=metrics,
        files={
            "plate": str(plate.path),
            "tracks": str(plate.tracks_path),
            "checkpoint": str(out / "checkpoints" / "last.ckpt"),
            "embeddings_trained": str(out / "embeddings_trained.zarr"),
            "embeddings_untrained": str(out / "embeddings_untrained.zarr"),
            "pca_png": str(pca_png),
            "triplet_png": str(grid_png),
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
        description="Train and evaluate DynaCLR on a synthetic plate, on CPU, in a few minutes.",
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
