"""The ``viscy`` command line.

``viscy fit|validate|test|predict|export -c config.yml`` run through
:class:`VisCyCLI` (a ``LightningCLI``); ``viscy preprocess`` computes
normalization statistics. Lightning is imported only when a Lightning
subcommand runs, so ``viscy --help`` and ``viscy preprocess`` start fast.

A YAML config may list ``base:`` files (paths relative to the YAML), merged
recursively underneath it before Lightning parses it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from viscy_utils._lightning_cli import VisCyCLI

LIGHTNING_SUBCOMMANDS: dict[str, str] = {
    "fit": "Train a model (any LightningModule/LightningDataModule by class_path).",
    "validate": "Run one validation epoch.",
    "test": "Run one test epoch.",
    "predict": "Run inference; prediction writers are set as trainer callbacks.",
    "export": "Export a model (optionally from a checkpoint) to ONNX with a dynamic batch axis.",
}
OTHER_SUBCOMMANDS: dict[str, str] = {
    "preprocess": "Compute normalization statistics of an OME-Zarr plate into its metadata.",
    "check": "Validate a config and its data before a run (-c fit.yml [--read N|all] [--json]).",
    "rechunk": "Write a training-optimized (zarr v3 sharded, small-chunk) copy of a plate.",
}
SUBCOMMANDS: dict[str, str] = {**LIGHTNING_SUBCOMMANDS, **OTHER_SUBCOMMANDS}

__all__ = ["SUBCOMMANDS", "VisCyCLI", "compose_config_args", "main"]


def _usage(prog: str = "viscy") -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [
        f"usage: {prog} [-h] {{{','.join(SUBCOMMANDS)}}} ...",
        "",
        "VisCy: train, evaluate and deploy deep-learning models of microscopy data.",
        "",
        "subcommands:",
        *(f"  {name:<{width}}  {text}" for name, text in SUBCOMMANDS.items()),
        "",
        "options:",
        "  -h, --help  show this help message and exit",
        "",
        f"Run '{prog} <subcommand> --help' for the options of a subcommand.",
        "Configs: '-c config.yml'; a config may list 'base: [other.yml, ...]' (paths relative",
        "to it) that are merged underneath it.",
    ]
    return "\n".join(lines)


def compose_config_args(argv: list[str]) -> list[str]:
    """Replace each ``-c/--config FILE`` whose YAML lists ``base:`` by the composed YAML text.

    Configs without ``base:`` are passed through unchanged (so Lightning still
    resolves paths relative to them).
    """
    import yaml

    from viscy_utils.cli_utils import BASE_KEY, load_config

    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        path = None
        if arg in ("-c", "--config") and i + 1 < len(argv):
            path, prefix, i = argv[i + 1], [arg], i + 2
        elif arg.startswith("--config="):
            path, prefix, i = arg.split("=", 1)[1], ["--config"], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        composed = path
        try:
            with open(path) as f:
                raw = yaml.safe_load(f)
        except OSError:
            raw = None  # not a file: let Lightning report it (or parse it as YAML text)
        if isinstance(raw, dict) and BASE_KEY in raw:
            composed = yaml.safe_dump(load_config(path), sort_keys=False)
        out += [*prefix, composed]
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``viscy`` console script.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        Process exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command in LIGHTNING_SUBCOMMANDS:
        from viscy_utils._lightning_cli import run_cli

        try:
            return run_cli([command, *compose_config_args(rest)])
        except SystemExit as exc:  # jsonargparse exits on --help and on errors
            return _exit_code(exc)
    if command == "preprocess":
        from viscy_utils.preprocess import preprocess_main

        try:
            return preprocess_main(rest)
        except SystemExit as exc:  # argparse exits on --help and on errors
            return _exit_code(exc)
    if command == "check":
        from viscy_utils.check import check_main

        try:
            return check_main(rest, prog="viscy")
        except SystemExit as exc:  # argparse exits on --help and on errors
            return _exit_code(exc)
    if command == "rechunk":
        from viscy_utils.rechunk import rechunk_main

        try:
            return rechunk_main(rest)
        except SystemExit as exc:  # argparse exits on --help and on errors
            return _exit_code(exc)
    print(_usage(), file=sys.stderr)
    print(f"\nviscy: error: unknown subcommand {command!r}", file=sys.stderr)
    return 2


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def __getattr__(name: str) -> Any:
    if name == "VisCyCLI":
        from viscy_utils._lightning_cli import VisCyCLI

        return VisCyCLI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
