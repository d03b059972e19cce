"""The ``cytoland`` command line.

Each subcommand names the function that implements it and is imported only when run, so
``cytoland --help`` answers without importing torch or Lightning. ``fit``, ``validate``,
``test``, ``predict`` and ``export`` go to the VisCy Lightning CLI
(:func:`viscy_utils.cli.main`); ``export`` also checks the ONNX graph against torch with
onnxruntime.
"""

from __future__ import annotations

from collections.abc import Sequence

from viscy_utils.commands import LazyCommand, run_command

__all__ = ["COMMANDS", "main"]

_VISCY = "viscy_utils.cli:main"

COMMANDS: dict[str, LazyCommand] = {
    "fit": LazyCommand(_VISCY, "Train a virtual staining model (-c fit.yml).", ("fit",)),
    "validate": LazyCommand(_VISCY, "Run the validation loop (metrics per target).", ("validate",)),
    "test": LazyCommand(_VISCY, "Run the test loop (metrics per target).", ("test",)),
    "predict": LazyCommand(
        _VISCY, "Predict whole FOVs into an OME-Zarr plate (-c predict.yml).", ("predict",)
    ),
    "export": LazyCommand(
        _VISCY,
        "Export a model to ONNX, checked against torch with onnxruntime "
        "(-c fit.yml --ckpt_path ... --export_path model.onnx).",
        # the TorchScript exporter: the networks' input-shape checks stop torch.export
        ("export", "--verify", "true", "--dynamo", "false"),
    ),
    "check": LazyCommand(
        "cytoland.check:main",
        "Validate a config and its data before a run (-c fit.yml [--read N|all] [--json]).",
    ),
    "demo": LazyCommand(
        "cytoland.demo:main",
        "Synthetic plate -> train -> predict -> evaluate, on CPU in a few minutes.",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cytoland`` console script."""
    return run_command(
        "cytoland",
        "Cytoland: virtual staining of nuclei and membranes from label-free images.",
        COMMANDS,
        argv,
        hint="Start here: 'cytoland demo' (no data needed).",
    )


if __name__ == "__main__":
    raise SystemExit(main())
