"""Data loaders for datasets that return whole batches.

The single-cell pipelines (triplet, cell-division triplet, DynaCLR's multi-experiment
dataset) read a whole batch in one call of ``__getitems__`` and serve it with thread workers
(tensorstore reads release the GIL), so they share one loader builder.

:class:`ThreadDataLoader` is a ``torch.utils.data.DataLoader`` whose workers are threads of
the training process. Unlike MONAI's ``ThreadDataLoader`` (whose background ``ThreadBuffer``
prints an exception and then simply stops, ending the epoch early), an exception raised while
reading or collating a batch is re-raised in the iterating thread, with its original type,
message and traceback and a note naming the batch; an epoch yields every batch of its
sampler or raises. With ``multiprocessing_context`` set (``"fork"``, ``"spawn"``) the workers
are processes instead, through torch's own iterator, which re-raises worker errors likewise.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
from monai.data import ThreadDataLoader as _MonaiThreadDataLoader
from torch.utils.data import DataLoader, IterableDataset

__all__ = ["ThreadDataLoader", "identity_collate", "thread_data_loader"]


def identity_collate(batch: Any) -> Any:
    """Collate function for datasets whose ``__getitems__`` already returns a whole batch.

    A module-level function (unlike ``lambda x: x``) so that loaders stay picklable.

    Parameters
    ----------
    batch : Any
        What the dataset returned; returned unchanged.
    """
    return batch


def _pin(data: Any) -> Any:
    if isinstance(data, torch.Tensor):
        return data.pin_memory()
    if isinstance(data, dict):
        return {k: _pin(v) for k, v in data.items()}
    if isinstance(data, list | tuple) and not hasattr(data, "_fields"):
        return type(data)(_pin(v) for v in data)
    return data


class ThreadDataLoader(_MonaiThreadDataLoader):
    """A ``DataLoader`` with thread workers that never swallows an error.

    Batches are fetched by ``num_workers`` threads, at most ``num_workers * prefetch_factor``
    ahead of the consumer, and yielded in sampler order. ``num_workers=0`` reads in the
    iterating thread; a ``multiprocessing_context`` makes the workers processes (torch's own
    iterator). Takes every ``DataLoader`` argument, so Lightning can re-create it (e.g. with a
    distributed sampler). A subclass of MONAI's ``ThreadDataLoader`` (what 0.1.0 returned),
    without its ``ThreadBuffer``: ``buffer_size``, ``buffer_timeout`` and ``repeats`` are
    accepted and ignored (``repeats`` > 1 is refused).

    Parameters
    ----------
    dataset : Any
        Map-style or iterable dataset; a ``__getitems__`` method, when present, reads each
        batch with one call.
    **kwargs : Any
        ``DataLoader`` arguments (``batch_size``, ``num_workers``, ``collate_fn``, ...);
        ``use_thread_workers`` is dropped, ``repeats`` other than 1 raises ValueError.
    """

    def __init__(self, dataset: Any, **kwargs: Any) -> None:
        kwargs.pop("use_thread_workers", None)  # workers are threads unless a context is given
        if kwargs.get("repeats", 1) != 1:
            raise ValueError(f"repeats={kwargs['repeats']} is not supported; use 1")
        super().__init__(dataset, **kwargs)

    def _threaded(self) -> bool:
        return (
            self.num_workers > 0
            and self.multiprocessing_context is None
            and not isinstance(self.dataset, IterableDataset)
        )

    def _fetch(self, indices: Any) -> Any:
        dataset = self.dataset
        if self._auto_collation:
            getitems = getattr(dataset, "__getitems__", None)
            data = getitems(indices) if getitems else [dataset[i] for i in indices]
        else:
            data = dataset[indices]
        data = self.collate_fn(data)
        if self.pin_memory and torch.cuda.is_available():
            data = _pin(data)
        return data

    def _init_worker(self, worker_id: Iterator[int]) -> None:
        from monai.data.utils import worker_init_fn as monai_default

        # MONAI's default seeds the transforms of a worker *process*'s dataset copy; thread
        # workers share the dataset (our datasets draw from per-batch generators instead)
        if self.worker_init_fn is not None and self.worker_init_fn is not monai_default:
            self.worker_init_fn(next(worker_id))

    def __iter__(self) -> Iterator[Any]:
        if not self._threaded():
            yield from DataLoader.__iter__(self)  # no ThreadBuffer: errors reach the caller
            return
        depth = self.num_workers * (self.prefetch_factor or 2)
        ids = iter(range(self.num_workers))
        executor = ThreadPoolExecutor(
            max_workers=self.num_workers,
            thread_name_prefix="viscy-loader",
            initializer=self._init_worker,
            initargs=(ids,),
        )
        # torch's iterators draw a base seed from the loader's generator before sampling:
        # draw it too, so shuffled orders match num_workers=0 and process workers exactly
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        pending: deque[tuple[int, Future]] = deque()
        batches = enumerate(iter(self._index_sampler))
        try:
            for number, indices in batches:
                pending.append((number, executor.submit(self._fetch, indices)))
                if len(pending) >= depth:
                    yield self._result(*pending.popleft())
            while pending:
                yield self._result(*pending.popleft())
        finally:
            for _, future in pending:
                future.cancel()
            executor.shutdown(wait=False, cancel_futures=True)

    def _result(self, number: int, future: Future) -> Any:
        try:
            return future.result()
        except BaseException as err:
            if hasattr(err, "add_note"):
                err.add_note(
                    f"raised in a {type(self).__name__} worker thread while reading batch "
                    f"{number} of {len(self)} of {type(self.dataset).__name__}"
                )
            raise


def thread_data_loader(
    dataset: Any,
    *,
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
    multiprocessing_context: str | None = None,
    **kwargs: Any,
) -> ThreadDataLoader:
    """A :class:`ThreadDataLoader`: thread workers, errors re-raised, epochs never cut short.

    Worker-only options (``persistent_workers``, ``prefetch_factor``) are passed only when
    there are workers, as torch rejects them otherwise; ``multiprocessing_context``
    (``"fork"``, ``"spawn"``) makes the workers processes; ``kwargs`` go to the loader as is.

    Parameters
    ----------
    dataset : Any
        Dataset to load from.
    num_workers : int
        Worker threads (processes with ``multiprocessing_context``); 0 reads in the
        iterating thread.
    pin_memory : bool
        Copy batches into pinned (page-locked) memory for faster transfer to the GPU.
    persistent_workers : bool
        Keep workers between epochs, default False; used only when ``num_workers > 0``.
    prefetch_factor : int, optional
        Batches fetched ahead per worker; torch's default when None. Used only when
        ``num_workers > 0``.
    multiprocessing_context : str, optional
        ``"fork"`` or ``"spawn"`` to make the workers processes; None (default) keeps threads.
        Used only when ``num_workers > 0``.
    **kwargs : Any
        Other :class:`ThreadDataLoader` (``DataLoader``) arguments, passed as is.
    """
    if num_workers > 0:
        kwargs["persistent_workers"] = persistent_workers
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = prefetch_factor
        if multiprocessing_context is not None:
            kwargs["multiprocessing_context"] = multiprocessing_context
    return ThreadDataLoader(
        dataset,
        num_workers=num_workers,
        pin_memory=pin_memory,
        **kwargs,
    )
