"""``cytoland check -c fit.yml``: validate a virtual-staining config and its data before a run.

The checks of ``viscy check`` (:func:`viscy_utils.check.check_main`): the plate, channels,
z window and patch sizes against every FOV, normalization metadata, the model's input channels
and depth (``model_config``) against the data, and the trainer against the machine.
"""

from __future__ import annotations

from collections.abc import Sequence

from viscy_utils.check import check_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cytoland check``; returns the exit status."""
    return check_main(argv, prog="cytoland")
