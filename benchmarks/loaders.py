"""Loader benchmarks: each training DataLoader against raw tensorstore reads; prints JSON.

Each subcommand lives in its own module ``benchmarks/loader_<name>.py`` (found automatically)
that defines ``add_arguments(parser)`` and ``run(args) -> dict``; shared timing and raw
tensorstore baselines are in ``benchmarks/_loader_bench.py``.

* ``hcs``: :class:`viscy_data.HCSDataModule` training loader (``loader_hcs.py``).

Usage: ``uv run python benchmarks/loaders.py hcs [--batches 16] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules

from _loader_bench import emit

_HERE = Path(__file__).resolve().parent


def _subcommands() -> dict[str, str]:
    """Subcommand name -> module name, one per ``loader_<name>.py`` next to this file."""
    return {p.stem.removeprefix("loader_"): p.stem for p in sorted(_HERE.glob("loader_*.py"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in _subcommands().items():
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=(module.__doc__ or "").splitlines()[0])
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    emit(args.run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
