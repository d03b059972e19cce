"""Composable batch sampler: grouped, stratified, time-enriched, leaky, DDP-aware batches.

:class:`FlexibleBatchSampler` draws index batches from a table of valid anchors along several
independent axes:

* **grouping** (``batch_group_by``, shorthand ``experiment_aware=True``): every batch comes
  from a single group (e.g. one experiment), chosen per batch with ``group_weights``;
* **leak** (``leaky``): a fraction of each grouped batch is drawn from the other groups;
* **stratification** (``stratify_by``, shorthand ``condition_balanced=True``): within a batch,
  strata (e.g. conditions) get a share given by ``condition_ratio`` (equal by default);
* **temporal enrichment**: a focal time is drawn per batch and ``1 - temporal_global_fraction``
  of the batch comes from within ``temporal_window_hours`` of it;
* **distributed**: as in 0.1.0, one global batch sequence per epoch (the same on every rank)
  is dealt to the ``num_replicas`` ranks in turn, and every rank yields the same number of
  batches; each ``__iter__`` advances the epoch by one.

All per-anchor work is vectorized numpy; per batch only a handful of small draws run, so the
sampler keeps up with millions of anchors.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
from torch.utils.data import Sampler

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FlexibleBatchSampler"]

_TEMPORAL_COLUMNS = ("hours_post_infection", "hours_post_perturbation")
_DEFAULT_STRATIFY = "perturbation"


def _as_columns(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _factorize(df: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[Hashable]]:
    """Integer code per row for the combination of ``columns`` and the label of each code.

    Codes follow the sorted order of the labels, so they do not depend on row order.
    """
    import pandas as pd

    if not columns:
        return np.zeros(len(df), dtype=np.int64), [None]
    if len(columns) == 1:
        col = df[columns[0]]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.int64)
            used = np.unique(codes)
            uniques = np.asarray(col.cat.categories)[used]
            order = np.argsort(uniques)
            remap = np.full(len(col.cat.categories) + 1, -1, dtype=np.int64)
            remap[used[order]] = np.arange(len(used))
            return remap[codes], list(uniques[order])
        codes, uniques = pd.factorize(col, sort=False)
        order = np.argsort(np.asarray(uniques))
        remap = np.empty(len(order), dtype=np.int64)
        remap[order] = np.arange(len(order))
        return remap[codes], list(np.asarray(uniques)[order])
    index = pd.MultiIndex.from_frame(df[columns])
    codes, uniques = index.factorize(sort=True)
    return codes.astype(np.int64), list(uniques)


def _stable_argsort_small(keys: np.ndarray, n_values: int) -> np.ndarray:
    """Stable argsort of small non-negative integer keys (radix sort when they fit 16 bits)."""
    if n_values <= np.iinfo(np.uint16).max:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def _split_counts(total: int, shares: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer counts proportional to ``shares`` (largest remainder)."""
    shares = np.asarray(shares, dtype=np.float64)
    if total <= 0 or shares.sum() <= 0:
        return np.zeros(len(shares), dtype=np.int64)
    exact = total * shares / shares.sum()
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        counts[np.argsort(counts - exact, kind="stable")[:short]] += 1
    return counts


class _Cursor:
    """Walks a shuffled pool without replacement, reshuffling when it runs out."""

    __slots__ = ("_items", "_pos", "_rng")

    def __init__(self, items: np.ndarray, rng: np.random.Generator) -> None:
        self._rng = rng
        self._items = rng.permutation(items)
        self._pos = 0

    def take(self, k: int) -> np.ndarray:
        n = len(self._items)
        if k <= 0 or n == 0:
            return np.empty(0, dtype=np.int64)
        if self._pos + k <= n:
            out = self._items[self._pos : self._pos + k]
            self._pos += k
            return out
        parts = [self._items[self._pos :]]
        k -= n - self._pos
        while k > 0:
            self._items = self._rng.permutation(self._items)
            step = min(k, n)
            parts.append(self._items[:step])
            self._pos = step
            k -= step
        return np.concatenate(parts)


class FlexibleBatchSampler(Sampler[list[int]]):
    """Batch sampler over a table of valid anchors, composable along several axes.

    Yields lists of positional indices into ``valid_anchors`` (row ``i`` of the table is
    index ``i``); use it as a DataLoader ``batch_sampler``.

    Parameters
    ----------
    valid_anchors : pd.DataFrame
        One row per sampleable anchor; must hold the grouping, stratification and (with
        temporal enrichment) time columns.
    batch_size : int
        Anchors per batch.
    batch_group_by : str | list[str] | None
        Column(s) whose value is held fixed within a batch (e.g. ``"experiment"``).
        ``None``: batches mix all rows.
    leaky : float
        With grouping, the fraction of each batch drawn from the other groups (0 to 1).
    group_weights : dict[str, float] | None
        Relative probability of choosing each group for a batch, keyed by group value.
        ``None``: proportional to the group's number of anchors. Groups left out get 0.
    stratify_by : str | list[str] | None
        Column(s) balanced within each batch. The default ``"perturbation"`` falls back to
        ``"condition"`` when the table has no ``perturbation`` column, and to no
        stratification when it has neither; an explicitly named missing column is an error.
    temporal_enrichment : bool
        Concentrate each batch around a focal time drawn per batch from the batch's group.
    temporal_window_hours : float
        Half-width of the focal window, in the time column's hours.
    temporal_global_fraction : float
        Fraction of a time-enriched batch drawn from the whole group instead of the window.
    num_replicas : int
        Number of distributed ranks.
    rank : int
        This process's rank in ``[0, num_replicas)``.
    seed : int
        Base seed; the epoch's draws depend only on ``seed`` and the epoch.
    drop_last : bool
        Drop the last incomplete batch of each rank (otherwise it is yielded short).
    experiment_aware : bool | None
        Shorthand: ``True`` sets ``batch_group_by="experiment"``, ``False`` disables grouping.
    condition_balanced : bool | None
        Shorthand: ``True`` sets ``stratify_by="condition"``, ``False`` disables it.
    experiment_weights : dict[str, float] | None
        Alias of ``group_weights``.
    condition_ratio : dict[str, float] | None
        Target share of each stratum value within a batch (normalized to sum to 1; values
        left out get 0). ``None``: equal shares among the strata present in the group.
    temporal_column : str | None
        Time column in hours; ``None`` picks ``hours_post_infection`` or
        ``hours_post_perturbation``.
    """

    def __init__(
        self,
        valid_anchors: pd.DataFrame,
        batch_size: int = 128,
        batch_group_by: str | list[str] | None = None,
        leaky: float = 0.0,
        group_weights: dict[str, float] | None = None,
        stratify_by: str | list[str] | None = _DEFAULT_STRATIFY,
        temporal_enrichment: bool = False,
        temporal_window_hours: float = 2.0,
        temporal_global_fraction: float = 0.3,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        drop_last: bool = True,
        experiment_aware: bool | None = None,
        condition_balanced: bool | None = None,
        experiment_weights: dict[str, float] | None = None,
        condition_ratio: dict[str, float] | None = None,
        temporal_column: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= leaky < 1.0:
            raise ValueError(f"leaky must be in [0, 1), got {leaky}")
        if not 0.0 <= temporal_global_fraction <= 1.0:
            raise ValueError(
                f"temporal_global_fraction must be in [0, 1], got {temporal_global_fraction}"
            )
        if temporal_window_hours < 0:
            raise ValueError(f"temporal_window_hours must be >= 0, got {temporal_window_hours}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, {num_replicas=}")
        if group_weights is not None and experiment_weights is not None:
            raise ValueError("give group_weights or experiment_weights, not both")
        if len(valid_anchors) == 0:
            raise ValueError("valid_anchors is empty: no anchor can be sampled")

        if experiment_aware is not None:
            batch_group_by = "experiment" if experiment_aware else None
        explicit_stratify = stratify_by != _DEFAULT_STRATIFY
        if condition_balanced is not None:
            stratify_by = "condition" if condition_balanced else None
            explicit_stratify = True

        columns = set(valid_anchors.columns)
        group_cols = _as_columns(batch_group_by)
        strat_cols = _as_columns(stratify_by)
        if not explicit_stratify and strat_cols and strat_cols[0] not in columns:
            strat_cols = ["condition"] if "condition" in columns else []
        for role, cols in (("batch_group_by", group_cols), ("stratify_by", strat_cols)):
            missing = [c for c in cols if c not in columns]
            if missing:
                raise ValueError(
                    f"{role} column(s) {missing} not in valid_anchors (columns: {sorted(columns)})"
                )

        self.batch_size = int(batch_size)
        self.batch_group_by = group_cols
        self.stratify_by = strat_cols
        self.leaky = float(leaky) if group_cols else 0.0
        self.temporal_enrichment = bool(temporal_enrichment)
        self.temporal_window_hours = float(temporal_window_hours)
        self.temporal_global_fraction = float(temporal_global_fraction)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._n = len(valid_anchors)

        self._group_codes, self.group_labels = _factorize(valid_anchors, group_cols)
        self._stratum_codes, self.stratum_labels = _factorize(valid_anchors, strat_cols)
        n_groups, n_strata = len(self.group_labels), len(self.stratum_labels)

        weights = experiment_weights if experiment_weights is not None else group_weights
        sizes = np.bincount(self._group_codes, minlength=n_groups).astype(np.float64)
        if weights is None or not group_cols:
            self._group_p = sizes / sizes.sum()
        else:
            self._group_p = self._weights_vector(weights, self.group_labels, "group_weights")
        ratio = np.ones(n_strata)
        if condition_ratio is not None and strat_cols:
            ratio = self._weights_vector(condition_ratio, self.stratum_labels, "condition_ratio")
        self._stratum_ratio = ratio

        self._times: np.ndarray | None = None
        if self.temporal_enrichment:
            col = temporal_column
            if col is None:
                col = next((c for c in _TEMPORAL_COLUMNS if c in columns), None)
            if col is None or col not in columns:
                raise ValueError(
                    "temporal_enrichment needs a time column in hours: "
                    f"{temporal_column or ' or '.join(_TEMPORAL_COLUMNS)} is not in valid_anchors"
                )
            self.temporal_column = col
            self._times = valid_anchors[col].to_numpy(dtype=np.float64)
            if np.isnan(self._times).any():
                raise ValueError(f"column {col!r} of valid_anchors has NaN values")

        # rows sorted by (group, stratum, time): each (group, stratum) pool is one slice
        pool_key = self._group_codes * n_strata + self._stratum_codes
        n_pools = n_groups * n_strata
        if self._times is not None:
            by_time = np.argsort(self._times)
            self._order = by_time[_stable_argsort_small(pool_key[by_time], n_pools)]
        else:
            self._order = _stable_argsort_small(pool_key, n_pools)

    @staticmethod
    def _weights_vector(weights: dict, labels: list, name: str) -> np.ndarray:
        unknown = [k for k in weights if k not in labels]
        if unknown:
            raise ValueError(f"{name} has keys {unknown} not among the values {labels}")
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"{name} must be non-negative, got {weights}")
        vec = np.array([float(weights.get(label, 0.0)) for label in labels])
        if vec.sum() <= 0:
            raise ValueError(f"{name} gives zero weight to every value: {weights}")
        return vec / vec.sum()

    # ----------------------------------------------------------------------------- epochs
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; each epoch shuffles, shards and draws anew (same on every rank)."""
        self.epoch = int(epoch)

    @property
    def sampler(self) -> FlexibleBatchSampler:
        """This sampler itself: Lightning calls ``set_epoch`` on ``batch_sampler.sampler``
        at every epoch, so exposing it here keeps the per-epoch reshuffle automatic."""
        return self

    def _global_batch_sizes(self) -> np.ndarray:
        """Sizes of the batches of one epoch of all ranks together."""
        full, rest = divmod(self._n, self.batch_size)
        sizes = [self.batch_size] * full
        if rest and not self.drop_last:
            sizes.append(rest)
        return np.asarray(sizes, dtype=np.int64)

    def __len__(self) -> int:
        n_global = len(self._global_batch_sizes())
        if self.drop_last:
            return n_global // self.num_replicas
        return -(-n_global // self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        """This rank's batches of the current epoch; the epoch then advances by one.

        As in 0.1.0, one global batch sequence (the same on every rank: same seed and
        epoch) is dealt to the ranks in turn: rank ``r`` gets batches ``r, r + R, ...``.
        Every rank gets ``len(self)`` batches (with ``drop_last=False`` a rank short of one
        repeats the epoch's first batches), so DDP ranks never wait on each other.
        """
        epoch = self.epoch
        self.epoch += 1
        rng = np.random.default_rng([self.seed, epoch])
        plan = _EpochPlan(self, self._order, rng)
        sizes = self._global_batch_sizes()
        if not len(sizes):
            return
        groups = rng.choice(len(plan.group_p), size=len(sizes), p=plan.group_p)
        focal = rng.random(len(sizes))
        mine = {(k * self.num_replicas + self.rank) % len(sizes) for k in range(len(self))}
        batches: dict[int, list[int]] = {}
        for i, (size, group, u) in enumerate(
            zip(sizes.tolist(), groups.tolist(), focal.tolist(), strict=True)
        ):
            batch = plan.next_batch(size, group, u)  # every rank draws the whole sequence
            if i in mine:
                batches[i] = self._rows_out(batch)
        for k in range(len(self)):
            yield batches[(k * self.num_replicas + self.rank) % len(sizes)]

    @staticmethod
    def _rows_out(batch: np.ndarray) -> list[int]:
        return batch.tolist()

    def batches(self) -> np.ndarray:
        """This rank's whole epoch as an ``(n_batches, batch_size)`` array (``drop_last``)."""
        if not self.drop_last:
            raise ValueError("batches() needs drop_last=True (equal batch sizes)")
        out = np.empty((len(self), self.batch_size), dtype=np.int64)
        for i, batch in enumerate(self):
            out[i] = batch
        return out


class _EpochPlan:
    """Per-epoch pools of one rank and the per-batch drawing logic."""

    def __init__(self, s: FlexibleBatchSampler, rows: np.ndarray, rng: np.random.Generator):
        self.s = s
        self.rng = rng
        self.rows = rows
        n_groups, n_strata = len(s.group_labels), len(s.stratum_labels)
        self.n_strata = n_strata
        keys = (s._group_codes * n_strata + s._stratum_codes)[rows]
        bounds = np.searchsorted(keys, np.arange(n_groups * n_strata + 1))
        self.bounds = bounds.reshape(-1)  # pool p = rows[bounds[p]:bounds[p + 1]]
        self.pool_size = np.diff(bounds).reshape(n_groups, n_strata)
        group_size = self.pool_size.sum(axis=1)
        p = np.where(group_size > 0, s._group_p, 0.0)
        if p.sum() <= 0:
            raise ValueError(
                f"rank {s.rank} holds no anchor of any group with non-zero weight; "
                "fewer replicas or more anchors are needed"
            )
        self.group_p = p / p.sum()
        self.cursors: dict[int, _Cursor] = {}
        self.times = s._times[rows] if s._times is not None else None
        self.group_codes_rows = s._group_codes[rows]
        self._leak_cursor: _Cursor | None = None
        self._count_cache: dict[tuple[int, bytes], np.ndarray] = {}

    def _cursor(self, pool: int) -> _Cursor:
        cur = self.cursors.get(pool)
        if cur is None:
            lo, hi = self.bounds[pool], self.bounds[pool + 1]
            cur = self.cursors[pool] = _Cursor(np.arange(lo, hi), self.rng)
        return cur

    def _stratum_counts(self, total: int, available: np.ndarray) -> np.ndarray:
        present = available > 0
        key = (total, present.tobytes())
        counts = self._count_cache.get(key)
        if counts is None:
            shares = np.where(present, self.s._stratum_ratio, 0.0)
            if shares.sum() <= 0:
                shares = present.astype(np.float64)
            counts = self._count_cache[key] = _split_counts(total, shares)
        return counts.copy()

    def _distinct(self, lo: int, hi: int, k: int) -> np.ndarray:
        """``k`` distinct integers from ``[lo, hi)`` in random order (``k <= hi - lo``)."""
        m = hi - lo
        if 4 * k < m:  # sparse: draws with replacement are usually distinct already
            draws = self.rng.integers(lo, hi, size=k)
            ordered = np.sort(draws)
            if not (ordered[1:] == ordered[:-1]).any():
                return draws
        return lo + self.rng.choice(m, size=k, replace=False)

    def _draw_window(self, group: int, total: int, focal: float) -> np.ndarray:
        """Up to ``total`` distinct positions within the focal window, stratified."""
        w = self.s.temporal_window_hours
        base = group * self.n_strata
        lo_hi = []
        for st in range(self.n_strata):
            lo, hi = self.bounds[base + st], self.bounds[base + st + 1]
            t = self.times[lo:hi]
            a, b = np.searchsorted(t, focal - w, "left"), np.searchsorted(t, focal + w, "right")
            lo_hi.append((lo + a, lo + b))
        avail = np.array([b - a for a, b in lo_hi], dtype=np.int64)
        counts = self._stratum_counts(total, avail)
        counts = np.minimum(counts, avail)
        # hand the shortfall to strata with room left, in proportion to their room
        short = total - int(counts.sum())
        room = avail - counts
        if short > 0 and room.sum() > 0:
            extra = np.minimum(_split_counts(min(short, int(room.sum())), room), room)
            counts += extra
        parts = [
            self._distinct(int(a), int(b), int(c))
            for (a, b), c in zip(lo_hi, counts, strict=True)
            if c > 0
        ]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def _draw_global(self, group: int, total: int) -> np.ndarray:
        counts = self._stratum_counts(total, self.pool_size[group])
        base = group * self.n_strata
        parts = [self._cursor(base + st).take(int(c)) for st, c in enumerate(counts) if c > 0]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def _draw_leak(self, group: int, total: int) -> np.ndarray:
        if total <= 0:
            return np.empty(0, dtype=np.int64)
        if self._leak_cursor is None:
            self._leak_cursor = _Cursor(np.arange(len(self.rows)), self.rng)
        others = 1.0 - self.pool_size[group].sum() / max(len(self.rows), 1)
        if others <= 0:
            return np.empty(0, dtype=np.int64)
        got: list[np.ndarray] = []
        need = total
        for _ in range(64):
            cand = self._leak_cursor.take(int(need / others * 1.2) + 4)
            cand = cand[self.group_codes_rows[cand] != group]
            got.append(cand[:need])
            need -= len(got[-1])
            if need <= 0:
                break
        return np.concatenate(got)

    def next_batch(self, size: int, group: int, focal_u: float) -> np.ndarray:
        """Row indices of one batch of ``size`` from ``group``; ``focal_u`` in [0, 1) picks
        the focal anchor (temporal enrichment)."""
        s = self.s
        n_leak = int(round(s.leaky * size)) if s.leaky > 0 else 0
        n_main = size - n_leak
        parts = []
        n_focal = 0
        if s.temporal_enrichment:
            n_focal = int(round((1.0 - s.temporal_global_fraction) * n_main))
            lo, hi = self.bounds[group * self.n_strata], self.bounds[(group + 1) * self.n_strata]
            focal = float(self.times[lo + int(focal_u * (hi - lo))])
            parts.append(self._draw_window(group, n_focal, focal))
            n_focal = len(parts[-1])
        parts.append(self._draw_global(group, n_main - n_focal))
        parts.append(self._draw_leak(group, n_leak))
        batch = np.concatenate(parts)
        batch = self._dedupe(batch, group)
        return self.rows[batch]

    def _dedupe(self, batch: np.ndarray, group: int) -> np.ndarray:
        """Replace repeated anchors within a batch (from the window/global overlap)."""
        for _ in range(8):
            ordered = np.sort(batch)
            if not (ordered[1:] == ordered[:-1]).any():
                return batch
            uniq, first = np.unique(batch, return_index=True)
            if len(uniq) == len(batch):
                return batch
            dup = np.ones(len(batch), dtype=bool)
            dup[first] = False
            batch[dup] = self._draw_global(group, int(dup.sum()))
        return batch
