"""``python -m benchmarks.loaders {hcs,triplet,multi} ...``: run one loader benchmark."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from benchmarks.common import emit
from benchmarks.loaders import BENCHMARKS
from benchmarks.loaders import __doc__ as _doc


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the subcommand, run its benchmark, print its JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loaders", description=_doc)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(f"benchmarks.loaders.{module_name}")
        sub_parser = sub.add_parser(name, help=(module.__doc__ or "").splitlines()[0])
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    emit(args.run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
