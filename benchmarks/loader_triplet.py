"""TripletDataModule training loader against one raw tensorstore read of the same boxes.

The benchmark lives in ``_loader_triplet.py`` (also runnable alone); this module exposes it
as the ``triplet`` subcommand of ``benchmarks/loaders.py``.
"""

from __future__ import annotations

from _loader_triplet import add_arguments, run

__all__ = ["add_arguments", "run"]
