"""Tracks tables for the single-cell pipelines: loading, validation, patch windows, sampling.

One tracks CSV per FOV lives at ``<tracks_root>/<row>/<col>/<fov>/*.csv`` (ultrack layout).
:func:`read_tracks_csv` validates one file against its image and returns a clean table;
:class:`TrackIndex` turns the tables of several FOVs into flat arrays from which anchors,
positives (same cell, or its daughter after a division, ``dt`` frames later) and negatives
(another track) are drawn for whole batches at once, without scanning the table per anchor.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "TRACK_OPTIONAL_COLUMNS",
    "TRACK_REQUIRED_COLUMNS",
    "TrackIndex",
    "batch_rng",
    "find_tracks_csv",
    "patch_starts",
    "read_tracks_csv",
    "validate_tracks",
    "clear_of_border",
    "window_inside",
]

TRACK_REQUIRED_COLUMNS: tuple[str, ...] = ("track_id", "t", "y", "x")
TRACK_OPTIONAL_COLUMNS: tuple[str, ...] = ("id", "parent_track_id", "parent_id", "z")
_INT_COLUMNS = ("track_id", "t", "id", "parent_track_id", "parent_id")
_CENTROID_COLUMNS = ("z", "y", "x")
# value used for optional id columns that a CSV does not provide
_MISSING_ID = -1


def find_tracks_csv(tracks_root: str | Path, fov_name: str) -> Path:
    """Return the single tracks CSV of one FOV.

    Parameters
    ----------
    tracks_root : str or Path
        Root folder holding ``<row>/<col>/<fov>/*.csv``.
    fov_name : str
        FOV name such as ``"A/1/0"`` (a leading ``/`` is ignored).

    Returns
    -------
    Path
        The CSV file.

    Raises
    ------
    FileNotFoundError
        If the folder or a CSV in it is missing.
    ValueError
        If the folder holds more than one CSV.
    """
    folder = Path(tracks_root) / fov_name.strip("/")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No tracks folder for FOV '{fov_name}': expected a CSV in {folder} "
            f"(tracks_path={tracks_root})"
        )
    csvs = sorted(folder.glob("*.csv"))
    if not csvs:
        raise FileNotFoundError(f"No tracks CSV for FOV '{fov_name}' in {folder}")
    if len(csvs) > 1:
        names = ", ".join(c.name for c in csvs)
        raise ValueError(
            f"More than one tracks CSV for FOV '{fov_name}' in {folder} ({names}); keep one."
        )
    return csvs[0]


def _bad_rows(
    mask: np.ndarray, limit: int = 5, values: pd.Series | None = None, column: str = ""
) -> str:
    """CSV line numbers (header is line 1) of the first rows flagged in ``mask``.

    With ``values`` each line is followed by the offending value, e.g. ``4 (t='abc')``.
    """
    flagged = np.flatnonzero(mask)[:limit]
    more = " ..." if mask.sum() > limit else ""
    if values is None:
        return ", ".join(str(r + 2) for r in flagged) + more
    raw = values.to_numpy()
    return ", ".join(f"{r + 2} ({column}={_show(raw[r])})" for r in flagged) + more


def _show(value: object) -> str:
    """A cell value as the user wrote it: ``'abc'``, ``7``, ``500.0``, ``<missing>``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "<missing>"
    return repr(value.item() if isinstance(value, np.generic) else value)


def _integer_column(table: pd.DataFrame, column: str, source: str) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{source}: column '{column}' must hold integers, found missing or "
            f"non-numeric values on line(s) {_bad_rows(bad, values=table[column], column=column)}"
        )
    fractional = values != np.round(values)
    if fractional.any():
        raise ValueError(
            f"{source}: column '{column}' must hold integers, found fractional "
            f"values on line(s) {_bad_rows(fractional, values=table[column], column=column)}"
        )
    return values.astype(np.int64)


def _centroid_column(table: pd.DataFrame, column: str, source: str, extent: int) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{source}: column '{column}' must hold numbers, found missing or "
            f"non-numeric values on line(s) {_bad_rows(bad, values=table[column], column=column)}"
        )
    # truncated to the pixel that holds the centroid, as 0.1.0 does (int(48.9) = 48); floor,
    # so a centroid just left of 0 (-0.5) is outside the image rather than on pixel 0
    pixels = np.floor(values).astype(np.int64)
    outside = (pixels < 0) | (pixels >= extent)
    if outside.any():
        raise ValueError(
            f"{source}: centroid column '{column}' is outside the image "
            f"(valid 0..{extent - 1}) on line(s) "
            f"{_bad_rows(outside, values=table[column], column=column)}"
        )
    return pixels


def read_tracks_csv(
    path: str | Path,
    fov_name: str,
    image_shape: Sequence[int],
    require_all_columns: bool = False,
    keep_extra_columns: bool = False,
) -> pd.DataFrame:
    """Read and validate the tracks CSV of one FOV.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    fov_name : str
        The FOV it belongs to; stored in the ``fov_name`` column (without a leading ``/``).
    image_shape : sequence of int
        ``(T, C, Z, Y, X)`` of the FOV's image.
    require_all_columns : bool
        Also require the optional columns ``id, parent_track_id, parent_id, z`` (predict mode,
        where they are written out with the embeddings).
    keep_extra_columns : bool
        Keep the CSV's other columns (after the standard ones, values unchanged).

    Returns
    -------
    pd.DataFrame
        Columns ``fov_name, track_id, t, id, parent_track_id, parent_id, z, y, x`` (ids int64,
        centroids truncated to the pixel that holds them, as int64, as in 0.1.0), in file
        order. Missing optional id
        columns are filled with -1 and a missing ``z`` with 0.

    Raises
    ------
    ValueError
        Unreadable file, missing column, non-integer ids, ``t`` beyond the image, centroids
        outside the image or duplicate ``(track_id, t)`` rows; the message names the file and
        the column and line.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise
    except Exception as err:  # parser, encoding and empty-file errors alike
        raise ValueError(f"Cannot read tracks CSV {path} (FOV '{fov_name}'): {err}") from err
    return validate_tracks(
        table, f"Tracks CSV {path}", fov_name, image_shape, require_all_columns, keep_extra_columns
    )


def validate_tracks(
    table: pd.DataFrame,
    source: str,
    fov_name: str,
    image_shape: Sequence[int],
    require_all_columns: bool = False,
    keep_extra_columns: bool = False,
) -> pd.DataFrame:
    """Validate a tracks table of one FOV against its image (see :func:`read_tracks_csv`).

    ``source`` names the table in error messages (e.g. ``"Tracks CSV /path/tracks.csv"``).
    Line numbers in messages count the CSV header as line 1.

    Parameters
    ----------
    table : pd.DataFrame
        Tracks table as read from the CSV.
    source : str
        Name of the table in error messages.
    fov_name : str
        FOV the tracks belong to (written, without leading or trailing ``/``, to the
        ``fov_name`` column).
    image_shape : Sequence[int]
        ``(T, C, Z, Y, X)`` shape of the FOV's image; ``t`` and the centroids must lie in it.
    require_all_columns : bool
        Default False; if True, the optional columns are required too (for prediction).
    keep_extra_columns : bool
        Default False; if True, columns other than the known ones are kept in the result.
    """
    n_t, _, n_z, n_y, n_x = (int(s) for s in image_shape)
    required = TRACK_REQUIRED_COLUMNS + (TRACK_OPTIONAL_COLUMNS if require_all_columns else ())
    missing = [c for c in required if c not in table.columns]
    if missing:
        mode = " (all are needed for prediction)" if require_all_columns else ""
        raise ValueError(
            f"{source} (FOV '{fov_name}') lacks column(s) {missing}{mode}; "
            f"found {list(table.columns)}"
        )
    n = len(table)
    out = {"fov_name": np.full(n, fov_name.strip("/"), dtype=object)}
    for column in _INT_COLUMNS:
        if column in table.columns:
            out[column] = _integer_column(table, column, source)
        else:
            out[column] = np.full(n, _MISSING_ID, dtype=np.int64)
    beyond = (out["t"] < 0) | (out["t"] >= n_t)
    if beyond.any():
        raise ValueError(
            f"{source}: column 't' is beyond the image's {n_t} timepoints "
            f"(valid 0..{n_t - 1}) on line(s) {_bad_rows(beyond, values=table['t'], column='t')}"
        )
    for column, extent in zip(_CENTROID_COLUMNS, (n_z, n_y, n_x), strict=True):
        if column in table.columns:
            out[column] = _centroid_column(table, column, source, extent)
        else:
            out[column] = np.zeros(n, dtype=np.int64)
    tracks = pd.DataFrame(out)
    if keep_extra_columns:
        for column in table.columns:
            if column not in tracks.columns:
                tracks[column] = table[column].to_numpy()
    duplicated = tracks.duplicated(["track_id", "t"]).to_numpy()
    if duplicated.any():
        rows = np.flatnonzero(duplicated)
        listing = ", ".join(
            f"{r + 2} (track_id={tracks['track_id'].iat[r]}, t={tracks['t'].iat[r]})"
            for r in rows[:5]
        ) + (" ..." if len(rows) > 5 else "")
        raise ValueError(
            f"{source}: more than one row for the same (track_id, t) on line(s) {listing}"
        )
    return tracks


def patch_starts(centers: np.ndarray, size: int, extent: np.ndarray | int) -> np.ndarray:
    """Start of a ``size``-long window centered on ``centers``, shifted inward at borders.

    A cell near the border keeps a full patch: the window slides inward so that it lies in
    ``[0, extent)``, and the cell is then off-center in its patch.

    Parameters
    ----------
    centers : np.ndarray
        Center pixel of each window along one axis (or several, broadcast with ``extent``).
    size : int
        Window length in pixels.
    extent : np.ndarray or int
        Image size in pixels along the axis (per axis if an array).
    """
    starts = np.asarray(centers, dtype=np.int64) - size // 2
    return np.clip(starts, 0, np.asarray(extent, dtype=np.int64) - size)


def clear_of_border(centers: np.ndarray, size: int, extent: np.ndarray | int) -> np.ndarray:
    """Whether each center lies strictly inside ``(size // 2, extent - size // 2)``.

    The border rule of the 0.1.0 triplet datasets: a cell is kept when its center is more
    than half a patch from both edges (a window touching the edge is dropped too).
    """
    centers = np.asarray(centers)
    half = size // 2
    return (centers > half) & (centers < np.asarray(extent, dtype=np.int64) - half)


def window_inside(centers: np.ndarray, size: int, extent: np.ndarray | int) -> np.ndarray:
    """Whether the centered window of each center lies inside ``[0, extent)`` unshifted."""
    starts = np.asarray(centers, dtype=np.int64) - size // 2
    return (starts >= 0) & (starts + size <= np.asarray(extent, dtype=np.int64))


def batch_rng(
    seed: int, indices: Sequence[int], salt: int = 0, epoch: int = 0
) -> np.random.Generator:
    """The random generator of one batch: the per-batch RNG strategy of the single-cell datasets.

    The generator is derived from the dataset ``seed``, the batch's sample ``indices``, a
    ``salt`` (to separate independent draws) and the ``epoch``; nothing else. So

    * it is seedable and reproducible: the same batch gets the same draws;
    * it is identical under ``fork`` and ``spawn`` and whichever worker (thread or process)
      draws the batch, since no generator state lives in a process;
    * different batches, hence different workers, get independent streams, and so do
      different epochs (datasets take the epoch through ``set_epoch``).

    Parameters
    ----------
    seed : int
        Seed of the dataset.
    indices : sequence of int
        Indices of the batch's samples, in the order the sampler gave them.
    salt : int
        Separates independent draws of the same batch.
    epoch : int
        Training epoch.

    Returns
    -------
    np.random.Generator
    """
    entropy = [int(seed), int(salt), len(indices), *(int(i) for i in indices)]
    if epoch:
        entropy.append(int(epoch))
    return np.random.default_rng(np.random.SeedSequence(entropy))


class TrackIndex:
    """Flat arrays over all cells (rows) of several FOVs, with batched triplet sampling.

    Parameters
    ----------
    tracks : pd.DataFrame
        Validated rows of all FOVs (columns of :func:`read_tracks_csv`), with an integer
        ``fov_index`` column. Row order is kept: row ``i`` of the index is row ``i`` here.
    time_interval : "any" or int
        ``dt`` between anchor and positive. ``"any"``: the positive is the anchor cell itself
        (the two views differ by augmentation) and negatives come from any time.
    need_positive : bool
        Whether anchors must have a positive (fit); in predict mode every row is an anchor.
    follow_lineage : bool
        Whether a positive may be a descendant (daughter after a division) when the anchor's
        own track has no row ``dt`` frames later. ``False``: only the anchor's own track
        (0.1.0's ``TripletDataset``), so the last frames before a division are no anchors.
    """

    def __init__(
        self,
        tracks: pd.DataFrame,
        time_interval: Literal["any"] | int = "any",
        need_positive: bool = True,
        follow_lineage: bool = True,
    ) -> None:
        if time_interval != "any":
            if isinstance(time_interval, bool) or not isinstance(time_interval, int | np.integer):
                raise ValueError(
                    f"time_interval must be 'any' or an int >= 1, got {time_interval!r}"
                )
            if time_interval < 1:
                raise ValueError(f"time_interval must be 'any' or an int >= 1, got {time_interval}")
        self.time_interval = time_interval
        self.follow_lineage = bool(follow_lineage)
        self.tracks = tracks.reset_index(drop=True)
        n = len(self.tracks)
        self.fov_index = self.tracks["fov_index"].to_numpy(dtype=np.int64)
        self.t = self.tracks["t"].to_numpy(dtype=np.int64)
        track_ids = self.tracks["track_id"].to_numpy(dtype=np.int64)
        # global track number: one per (fov, track_id)
        pair_index = pd.MultiIndex.from_arrays([self.fov_index, track_ids])
        codes, uniques = pd.factorize(pair_index)
        self.track = codes.astype(np.int64)
        self.n_tracks = len(uniques)
        # parent global track of each global track (-1: none, or parent not in the table)
        parent_ids = self.tracks["parent_track_id"].to_numpy(dtype=np.int64)
        parent_rows = pd.MultiIndex.from_arrays([self.fov_index, parent_ids])
        parent_of_row = uniques.get_indexer(parent_rows)
        self.parent = np.full(self.n_tracks, -1, dtype=np.int64)
        self.parent[self.track] = parent_of_row
        self.parent[self.parent == np.arange(self.n_tracks)] = -1
        self._t_span = int(self.t.max()) + 1 if n else 1
        self._build_negative_tables()
        if time_interval == "any" or not need_positive:
            self.anchors = np.arange(n, dtype=np.int64)
            self._pos_start = self._pos_count = None
        else:
            self._build_positive_tables(int(time_interval))

    def __len__(self) -> int:
        return len(self.anchors)

    def _build_positive_tables(self, dt: int) -> None:
        """Candidate positives of every (track, t) key: the track's own row, else descendants.

        Row ``r`` of track ``g`` at time ``t_r`` is a candidate for anchors of ``g`` and of
        every ancestor of ``g`` at time ``t_r - dt``. The (ancestor, row) pairs are sorted by
        key, so the candidates of an anchor are one contiguous run found by binary search.
        """
        n = len(self.t)
        rows = np.arange(n, dtype=np.int64)
        ancestor = self.track.copy()
        pair_track, pair_row, pair_depth = [ancestor], [rows], [np.zeros(n, np.int64)]
        depth = 0
        alive = np.ones(n, dtype=bool)
        while self.follow_lineage:
            depth += 1
            ancestor = np.where(alive, self.parent[ancestor], -1)
            alive = ancestor >= 0
            if not alive.any() or depth > self.n_tracks:  # depth guard: cyclic parent links
                break
            pair_track.append(ancestor[alive])
            pair_row.append(rows[alive])
            pair_depth.append(np.full(int(alive.sum()), depth, np.int64))
            ancestor = np.where(alive, ancestor, 0)
        pair_track = np.concatenate(pair_track)
        pair_row = np.concatenate(pair_row)
        pair_depth = np.concatenate(pair_depth)
        keys = pair_track * self._t_span + self.t[pair_row]
        order = np.lexsort((pair_depth, keys))
        self._cand_keys = keys[order]
        self._cand_rows = pair_row[order]
        self._cand_depth = pair_depth[order]
        target_t = self.t + dt
        anchor_keys = self.track * self._t_span + target_t
        start = np.searchsorted(self._cand_keys, anchor_keys, side="left")
        stop = np.searchsorted(self._cand_keys, anchor_keys, side="right")
        valid = (target_t < self._t_span) & (stop > start)
        self.anchors = np.flatnonzero(valid)
        self._pos_start = start
        self._pos_count = stop - start

    def _build_negative_tables(self) -> None:
        """Rows grouped by timepoint, for drawing negatives at a given time."""
        self._by_t_rows = np.argsort(self.t, kind="stable")
        sorted_t = self.t[self._by_t_rows]
        span = np.arange(self._t_span + 1)
        bounds = np.searchsorted(sorted_t, span, side="left")
        self._t_start = bounds[:-1]
        self._t_count = bounds[1:] - bounds[:-1]
        # tracks present at each time: a negative needs another track than the anchor's
        self._tracks_at_t = np.array(
            [
                len(np.unique(self.track[self._by_t_rows[s : s + c]]))
                for s, c in zip(self._t_start, self._t_count, strict=True)
            ],
            dtype=np.int64,
        )

    def positives(self, anchor_rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Row of a positive for each anchor row.

        Same track at ``t + dt`` when present, else a descendant (daughter after a division,
        chosen at random when there are several) at ``t + dt``.
        """
        anchor_rows = np.asarray(anchor_rows, dtype=np.int64)
        if self._pos_start is None:
            return anchor_rows.copy()
        start = self._pos_start[anchor_rows]
        count = self._pos_count[anchor_rows]
        if (count < 1).any():
            raise IndexError("positives() was asked for rows that are not valid anchors")
        # candidates are sorted by lineage depth: depth 0 (the anchor's own track) wins
        own = self._cand_depth[start] == 0
        pick = start + np.where(own, 0, np.floor(rng.random(len(start)) * count).astype(np.int64))
        return self._cand_rows[pick]

    def negatives(
        self,
        anchor_rows: np.ndarray,
        positive_rows: np.ndarray,
        rng: np.random.Generator,
        max_redraws: int = 16,
    ) -> np.ndarray:
        """Row of a negative for each anchor: a track other than the anchor's and positive's.

        With an int ``dt`` the negative is taken at the positive's time (``t + dt``) when that
        time holds another track, else at any time. Draws are uniform over the candidate rows;
        the few draws that hit the anchor's or positive's track are redrawn.
        """
        anchor_rows = np.asarray(anchor_rows, dtype=np.int64)
        positive_rows = np.asarray(positive_rows, dtype=np.int64)
        if self.n_tracks < 2:
            raise ValueError("Negatives need at least two tracks in the dataset")
        n_rows = len(self.t)
        own = self.track[anchor_rows]
        own_pos = self.track[positive_rows]
        if self.time_interval == "any":
            use_time = np.zeros(len(anchor_rows), dtype=bool)
        else:
            t_neg = self.t[positive_rows]
            # the anchor's and positive's tracks may both be present: need a third one there
            enough = self._tracks_at_t[t_neg] > np.where(own == own_pos, 1, 2)
            use_time = enough
        out = np.empty(len(anchor_rows), dtype=np.int64)
        todo = np.arange(len(anchor_rows))
        for _ in range(max_redraws):
            if len(todo) == 0:
                break
            u = rng.random(len(todo))
            timed = use_time[todo]
            draw = np.floor(u * n_rows).astype(np.int64)
            if timed.any():
                tt = self.t[positive_rows[todo[timed]]]
                local = np.floor(u[timed] * self._t_count[tt]).astype(np.int64)
                draw[timed] = self._by_t_rows[self._t_start[tt] + local]
            out[todo] = draw
            clash = (self.track[draw] == own[todo]) | (self.track[draw] == own_pos[todo])
            todo = todo[clash]
        for i in todo:  # rare: after many clashes, pick among the valid rows directly
            if use_time[i]:
                t_i = self.t[positive_rows[i]]
                pool = self._by_t_rows[self._t_start[t_i] : self._t_start[t_i] + self._t_count[t_i]]
            else:
                pool = np.arange(n_rows)
            pool = pool[(self.track[pool] != own[i]) & (self.track[pool] != own_pos[i])]
            if len(pool) == 0:
                pool = np.flatnonzero(self.track != own[i])
            out[i] = pool[rng.integers(len(pool))]
        return out
