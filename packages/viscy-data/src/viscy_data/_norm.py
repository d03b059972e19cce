"""Normalization statistics of many FOVs as arrays, gathered per batch.

The single-cell pipelines read patches of many FOVs and timepoints in one batch; each
patch needs the statistics of its own FOV (``dataset_statistics``, ``fov_statistics``) and
timepoint (``timepoint_statistics``), as ``viscy-transforms``' ``NormalizeSampled`` reads them
from ``sample["norm_meta"]``. :class:`NormStatsTable` turns the per-FOV metadata
(:func:`~viscy_data.read_norm_meta`) into arrays once, so a batch is a few fancy-indexing
operations instead of dictionary walks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["NEUTRAL_NORM_STATS", "NORM_LEVELS", "NormStatsTable"]

NORM_LEVELS: tuple[str, ...] = ("dataset_statistics", "fov_statistics", "timepoint_statistics")
#: values that leave an image unchanged under z-scoring / median-IQR scaling (others: 0)
NEUTRAL_NORM_STATS: dict[str, float] = {"mean": 0.0, "std": 1.0, "median": 0.0, "iqr": 1.0}


def _neutral(stat: str) -> float:
    return NEUTRAL_NORM_STATS.get(stat, 0.0)


class NormStatsTable:
    """Normalization statistics of FOVs, channels, levels and timepoints as arrays.

    Parameters
    ----------
    metas : sequence of dict or None
        Normalization metadata of each FOV (``read_norm_meta``), ``None`` for a FOV without.
    channels : sequence of str
        Channels of the batches, in order.
    n_frames : int or sequence of int
        Timepoints of every FOV (one number for all, or one per FOV).
    fov_names : sequence of str, optional
        Names of the FOVs, for error messages.
    absent_channels : sequence of collections of str, optional
        Per FOV, the channels its image does not have (read as zeros, e.g. an experiment
        lacking a reporter): they get neutral statistics and never count as missing.
    fill_missing : bool
        Give neutral statistics (mean 0, std 1, median 0, iqr 1, others 0) to every FOV,
        channel, level or timepoint that lacks them. Off by default: a channel without
        statistics in some FOV is left out of the batches, and :meth:`require` (called at
        ``setup`` by DataModules whose normalizations need statistics) raises an error
        naming the FOV.

    Notes
    -----
    A channel's levels and statistics are those every FOV that has the channel provides
    (with ``fill_missing``: those any FOV provides). A timepoint without statistics is NaN,
    or neutral with ``fill_missing``.
    """

    def __init__(
        self,
        metas: Sequence[Mapping | None],
        channels: Sequence[str],
        n_frames: int | Sequence[int],
        fov_names: Sequence[str] | None = None,
        *,
        absent_channels: Sequence[Collection[str]] | None = None,
        fill_missing: bool = False,
    ) -> None:
        n_fov = len(metas)
        self.channels = list(channels)
        self.fov_names = [str(n) for n in fov_names] if fov_names is not None else None
        if self.fov_names is not None and len(self.fov_names) != n_fov:
            raise ValueError(f"Got {n_fov} FOV metadata but {len(self.fov_names)} FOV names")
        frames = [int(n_frames)] * n_fov if isinstance(n_frames, int) else list(n_frames)
        if len(frames) != n_fov:
            raise ValueError(f"Got {n_fov} FOV metadata but {len(frames)} frame counts")
        n_t = max(frames, default=1)
        absent = [set(a) for a in absent_channels] if absent_channels is not None else None
        self.fill_missing = bool(fill_missing)
        #: (fov index, channel) pairs lacking statistics (not absent channels)
        self.missing: list[tuple[int, str]] = []
        self.columns: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        for channel in self.channels:
            entries: list[Mapping | None] = []
            for f, meta in enumerate(metas):
                if absent is not None and channel in absent[f]:
                    entries.append(None)
                    continue
                entry = (meta or {}).get(channel)
                if not entry:
                    self.missing.append((f, channel))
                entries.append(entry or None)
            provided = [e for e in entries if e is not None]
            lacking = any(c == channel for _, c in self.missing)
            if not provided or (lacking and not self.fill_missing):
                continue  # no statistics for this channel in the batches
            self.columns[channel] = self._channel_columns(entries, provided, frames, n_t)

    def _channel_columns(
        self,
        entries: list[Mapping | None],
        provided: list[Mapping],
        frames: list[int],
        n_t: int,
    ) -> dict[str, dict[str, np.ndarray]]:
        combine = set.union if self.fill_missing else set.intersection
        levels: dict[str, dict[str, np.ndarray]] = {}
        n_fov = len(entries)
        for level in NORM_LEVELS[:2]:
            have = [e.get(level) for e in provided]
            if not self.fill_missing and not all(have):
                continue
            stats = combine(*(set(h or {}) for h in have)) if have else set()
            if not stats:
                continue
            levels[level] = {}
            for stat in sorted(stats):
                column = np.full(n_fov, _neutral(stat), np.float32)
                for f, entry in enumerate(entries):
                    value = ((entry or {}).get(level) or {}).get(stat)
                    if value is not None:
                        column[f] = float(value)
                levels[level][stat] = column
        level = NORM_LEVELS[2]
        per_t = [e.get(level) or {} for e in provided]
        if self.fill_missing or all(per_t):
            values = [set(v) for d in per_t for v in d.values()]
            stats = combine(*values) if values else set()
            if stats:
                missing_t = {s: _neutral(s) if self.fill_missing else np.nan for s in stats}
                table = {s: np.full((n_fov, n_t), missing_t[s], np.float32) for s in stats}
                for f, entry in enumerate(entries):
                    if entry is None:  # absent (or filled) channel: neutral at every t
                        for s in stats:
                            table[s][f] = _neutral(s)
                        continue
                    for t_key, by_stat in (entry.get(level) or {}).items():
                        t = int(t_key)
                        if 0 <= t < frames[f]:
                            for s in stats:
                                if s in by_stat:
                                    table[s][f, t] = float(by_stat[s])
                levels[level] = {s: table[s] for s in sorted(stats)}
        return levels

    @property
    def complete(self) -> bool:
        """Whether every FOV has statistics for every channel it has."""
        return not self.missing

    def require(self, channels: Collection[str] | None = None, needed_by: str = "") -> None:
        """Raise if a FOV lacks statistics for one of ``channels`` (default: all), unless
        the table was built with ``fill_missing``.

        Raises
        ------
        ValueError
            Naming the first FOVs and channels without statistics.
        """
        if self.fill_missing:  # neutral values were asked for
            return
        wanted = set(self.channels if channels is None else channels)
        bad = [(f, c) for f, c in self.missing if c in wanted]
        if not bad:
            return
        listed = ", ".join(
            f"FOV '{self.fov_names[f] if self.fov_names else f'#{f}'}' channel '{c}'"
            for f, c in bad[:5]
        )
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        by = f" (needed by {needed_by})" if needed_by else ""
        raise ValueError(
            f"Normalization metadata is missing for {listed}{more}{by}; compute it with "
            "`viscy preprocess`"
        )

    def require_for(self, transforms: Sequence | None) -> None:
        """:meth:`require` the channels that the normalization transforms among
        ``transforms`` (those with ``keys`` and ``level``, as ``NormalizeSampled``) need."""
        from viscy_data._utils import find_normalize_transforms, normalization_channels

        found = find_normalize_transforms(transforms)
        if found:
            names = ", ".join(sorted({type(t).__name__ for t in found}))
            self.require(normalization_channels(found), needed_by=names)

    def gather(self, fov_index: np.ndarray, t: np.ndarray) -> dict | None:
        """Statistics of a batch: ``{channel: {level: {stat: tensor (B,)}}}``.

        Parameters
        ----------
        fov_index : np.ndarray
            FOV (position in ``metas``) of each sample.
        t : np.ndarray
            Timepoint of each sample; ``timepoint_statistics`` is resolved to it.

        Returns
        -------
        dict or None
            None when no channel has statistics.
        """
        if not self.columns:
            return None
        fov_index = np.asarray(fov_index, dtype=np.int64)
        t = np.asarray(t, dtype=np.int64)
        out: dict[str, dict[str, dict[str, Tensor]]] = {}
        for channel, levels in self.columns.items():
            out[channel] = {}
            for level, stats in levels.items():
                pick = (fov_index, t) if level == NORM_LEVELS[2] else fov_index
                out[channel][level] = {s: torch.from_numpy(v[pick]) for s, v in stats.items()}
        return out
