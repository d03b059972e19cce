"""Data loaders for datasets that return whole batches.

The single-cell pipelines (triplet, cell-division triplet, DynaCLR's multi-experiment
dataset) read a whole batch in one call of ``__getitems__`` and serve it with thread workers
(tensorstore reads release the GIL), so they share one loader builder.
"""

from __future__ import annotations

from typing import Any

__all__ = ["identity_collate", "thread_data_loader"]


def identity_collate(batch: Any) -> Any:
    """Collate function for datasets whose ``__getitems__`` already returns a whole batch.

    A module-level function (unlike ``lambda x: x``) so that loaders stay picklable.
    """
    return batch


def thread_data_loader(
    dataset: Any,
    *,
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
    **kwargs: Any,
) -> Any:
    """A MONAI ``ThreadDataLoader`` with thread workers.

    Worker-only options (``persistent_workers``, ``prefetch_factor``) are passed only when
    there are workers, as torch rejects them otherwise; ``kwargs`` go to the loader as is.
    """
    from monai.data import ThreadDataLoader

    if num_workers > 0:
        kwargs["persistent_workers"] = persistent_workers
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = prefetch_factor
    return ThreadDataLoader(
        dataset,
        use_thread_workers=True,
        num_workers=num_workers,
        pin_memory=pin_memory,
        **kwargs,
    )
