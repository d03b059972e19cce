"""The ``dynaclr`` command line.

Each subcommand names the module that implements it and is imported only when run,
so ``dynaclr --help`` answers without importing torch or Lightning.

``fit``, ``validate``, ``test`` and ``predict`` go to the VisCy Lightning CLI
(``viscy_utils.cli.main``); the others are DynaCLR's own tools.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

__all__ = ["COMMANDS", "main"]


@dataclass(frozen=True)
class LazyCommand:
    """A subcommand whose implementation is imported when it runs."""

    target: str  # "module:function", function(argv: list[str]) -> int | None
    help: str
    extra: str = ""  # dynaclr extra the command needs ("eval", "export"), checked first
    requires: tuple[str, ...] = ()  # its modules the command imports (all when empty)

    def __call__(self, argv: list[str]) -> int:
        if self.extra and not {"-h", "--help"} & set(argv):
            from dynaclr._imports import MissingExtraError, require_extra

            name = self.target.split(":")[0].rsplit(".", 1)[-1]
            try:
                require_extra(self.extra, self.requires or None, f"dynaclr ({name})")
            except MissingExtraError as err:
                print(f"dynaclr: error: {err}", file=sys.stderr)
                return 1
        module_name, func_name = self.target.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        result = func(argv)
        return 0 if result is None else int(result)


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


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: dynaclr <command> [options]",
        "",
        "DynaCLR: contrastive learning of cell dynamics from time-lapse microscopy.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {cmd.help}" for name, cmd in COMMANDS.items()]
    lines += [
        "",
        "Run 'dynaclr <command> --help' for the options of a command.",
        "Start here: 'dynaclr demo' (no data needed).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dynaclr`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        from importlib.metadata import version

        print(f"dynaclr {version('dynaclr')}")
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        print(_usage(), file=sys.stderr)
        print(f"\ndynaclr: unknown command {args[0]!r}", file=sys.stderr)
        return 2
    return command(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
