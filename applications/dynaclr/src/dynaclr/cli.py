"""The ``dynaclr`` command line.

Each subcommand names the module that implements it and is imported only when run,
so ``dynaclr --help`` answers without importing torch or Lightning.

``fit``, ``validate``, ``test`` and ``predict`` go to the VisCy Lightning CLI
(``viscy_utils.cli.main``); the others are DynaCLR's own tools.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from viscy_utils.commands import LazyCommand as _BaseCommand
from viscy_utils.commands import run_command

__all__ = ["COMMANDS", "LazyCommand", "main"]


@dataclass(frozen=True)
class LazyCommand(_BaseCommand):
    """A dynaclr subcommand: imported when it runs, after checking the extra it needs.

    Parameters
    ----------
    target, help, prefix
        As in :class:`viscy_utils.commands.LazyCommand`.
    extra : str
        The dynaclr extra the command needs (``"eval"``, ``"export"``), checked first.
    requires : tuple of str
        The extra's modules the command imports (all of the extra's when empty).
    """

    extra: str = ""
    requires: tuple[str, ...] = ()

    def precheck(self, argv: Sequence[str]) -> int | None:
        """Exit 1 with the ``pip install`` line when the command's extra is missing."""
        if not self.extra or {"-h", "--help"} & set(argv):
            return None
        from dynaclr._imports import MissingExtraError, require_extra

        name = self.target.split(":")[0].rsplit(".", 1)[-1]
        try:
            require_extra(self.extra, self.requires or None, f"dynaclr ({name})")
        except MissingExtraError as err:
            print(f"dynaclr: error: {err}", file=sys.stderr)
            return 1
        return None


_LIGHTNING = "dynaclr._lightning_cli:{}"

COMMANDS: dict[str, LazyCommand] = {
    "fit": LazyCommand(_LIGHTNING.format("fit"), "Train a model from a YAML config (-c fit.yml)."),
    "validate": LazyCommand(_LIGHTNING.format("validate"), "Run the validation loop."),
    "test": LazyCommand(_LIGHTNING.format("test"), "Run the test loop."),
    "predict": LazyCommand(
        _LIGHTNING.format("predict"), "Write embeddings from a checkpoint (-c predict.yml)."
    ),
    "export": LazyCommand(
        _LIGHTNING.format("export"),
        "Export a checkpoint's encoder to ONNX (-c export_onnx.yml).",
        extra="export",
        requires=("onnx", "onnxscript"),
    ),
    "demo": LazyCommand(
        "dynaclr.demo:main",
        "Synthetic plate -> train -> embed -> evaluate, on CPU in a few minutes.",
        extra="eval",
        requires=("anndata", "sklearn", "matplotlib"),
    ),
    "train-linear-classifier": LazyCommand(
        "dynaclr.evaluation.linear_classifier:train_main",
        "Fit a linear probe on embeddings (AnnData zarr) and annotations.",
        extra="eval",
        requires=("anndata", "sklearn"),
    ),
    "apply-linear-classifier": LazyCommand(
        "dynaclr.evaluation.linear_classifier:apply_main",
        "Label embeddings with a trained linear probe.",
        extra="eval",
        requires=("anndata", "sklearn"),
    ),
    "pseudo-tracks": LazyCommand(
        "dynaclr.pseudo_tracks:main",
        "Tracks CSVs from segmentation labels or centroids (pseudo-tracks).",
    ),
    "discover": LazyCommand(
        "dynaclr.study.discover:main",
        "Registry of plates, checkpoints, predictions and annotations in a folder.",
    ),
    "generate-predict-scripts": LazyCommand(
        "dynaclr.study.predict_scripts:main",
        "One SLURM predict script per checkpoint x dataset of a registry.",
    ),
    "generate-fit-config": LazyCommand(
        "dynaclr.study.fit_config:main",
        "A multi-experiment fit.yml from an experiments YAML and a model recipe.",
    ),
    "reduce": LazyCommand(
        "dynaclr.evaluation.reduce:main",
        "Add PCA / UMAP / PHATE coordinates to embedding zarrs (jointly over several).",
    ),
    "annotate": LazyCommand(
        "dynaclr.evaluation.annotate:main",
        "Merge an annotation CSV into the obs of an embedding zarr.",
    ),
    "append-predictions": LazyCommand(
        "dynaclr.evaluation.append_predictions:main",
        "Add a classifier's predictions CSV to the obs of an embedding zarr.",
    ),
    "split": LazyCommand(
        "dynaclr.evaluation.split:main",
        "Split an embedding zarr into one zarr per experiment or well.",
    ),
    "info": LazyCommand(
        "dynaclr.evaluation.info:main",
        "Shape, obs columns, obsm keys and provenance of embedding zarrs.",
    ),
    "plot": LazyCommand(
        "dynaclr.evaluation.plot:main",
        "PNG scatters of obsm coordinates and galleries of cell crops.",
    ),
    "evaluate": LazyCommand(
        "dynaclr.evaluation.evaluate:main",
        "Grouped-CV linear probe, kNN, temporal smoothness, MMD; Markdown report.",
    ),
    "explore": LazyCommand(
        "dynaclr.evaluation.explore:main",
        "Interactive HTML of the embedding with each cell's crops over time.",
    ),
    "check": LazyCommand(
        "dynaclr.check:main",
        "Validate a config and its data before a run (-c fit.yml [--read N|all] [--json]).",
    ),
    "inspect-batches": LazyCommand(
        "dynaclr.inspect_batches:main",
        "Write a PNG grid of anchor/positive/negative crops drawn from a config.",
        extra="eval",
        requires=("matplotlib",),
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dynaclr`` console script."""
    return run_command(
        "dynaclr",
        "DynaCLR: contrastive learning of cell dynamics from time-lapse microscopy.",
        COMMANDS,
        argv,
        hint="Start here: 'dynaclr demo' (no data needed).",
    )


if __name__ == "__main__":
    raise SystemExit(main())
