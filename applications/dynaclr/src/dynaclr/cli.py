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

    def __call__(self, argv: list[str]) -> int:
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
    "demo": LazyCommand(
        "dynaclr.demo:main",
        "Synthetic plate -> train -> embed -> evaluate, on CPU in a few minutes.",
    ),
    "train-linear-classifier": LazyCommand(
        "dynaclr.evaluation.linear_classifier:train_main",
        "Fit a linear probe on embeddings (AnnData zarr) and annotations.",
    ),
    "apply-linear-classifier": LazyCommand(
        "dynaclr.evaluation.linear_classifier:apply_main",
        "Label embeddings with a trained linear probe.",
    ),
    "check": LazyCommand(
        "dynaclr.check:main",
        "Validate a config and its data before a run (-c fit.yml [--read N|all] [--json]).",
    ),
    "inspect-batches": LazyCommand(
        "dynaclr.inspect_batches:main",
        "Write a PNG grid of anchor/positive/negative crops drawn from a config.",
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
