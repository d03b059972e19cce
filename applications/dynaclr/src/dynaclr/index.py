"""One table of tracked cells over several experiments, with lineage and valid anchors.

:class:`MultiExperimentIndex` reads every experiment's tracks, keeps the cells of the
condition wells, and adds the columns the sampler and dataset need:

* ``experiment``, ``condition``, ``well_name``, ``fov_name``, ``fluorescence_channel``
  (categoricals), ``hours_post_infection``, ``global_track_id`` (``"<exp>/<fov>/<track>"``),
  ``lineage_id`` (the global id of the track's root ancestor);
* ``y_origin``, ``x_origin``: the top-left corner of the cell's patch, clamped so the whole
  patch lies inside the image (border cells are kept, CELL-03); tracks are read and
  validated by :func:`viscy_data.read_tracks_csv` (one CSV per FOV; a centroid or frame
  outside the image is an error naming the file and line, centroids are truncated to their pixel);
* ``valid_anchors``: the rows that have a positive for some offset in ``tau_range``,
  in the same track or in a descendant track after division (CELL-04).

Everything is vectorized over rows; Python loops run over experiments, FOVs and lineage
generations only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from dynaclr.experiment import ExperimentRegistry
from dynaclr.tau_sampling import tau_probabilities, tau_range_frames
from viscy_data import find_tracks_csv, patch_starts, read_tracks_csv, validate_tracks

__all__ = ["MultiExperimentIndex"]

_log = logging.getLogger(__name__)

_REQUIRED_TRACK_COLUMNS = ("track_id", "t", "y", "x")
_OPTIONAL_TRACK_COLUMNS = {"id": -1, "parent_track_id": -1, "parent_id": -1, "z": 0}
_T_BITS = 24  # frame index bits in lineage keys (up to 16.7M frames)


def _key(track_code: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (track_code.astype(np.int64) << _T_BITS) | t.astype(np.int64)


def _validate_condition_tracks(
    registry: ExperimentRegistry,
    tracks: pd.DataFrame,
    image_shapes: Mapping[tuple[str, str], tuple[int, ...]],
) -> pd.DataFrame:
    """Validate the rows of every condition-well FOV with :func:`viscy_data.validate_tracks`.

    Rows of other wells, of unknown experiments or of FOVs without a shape are left as they
    are (dropped or reported by the index build).
    """
    for col in ("experiment", "fov_name"):
        if col not in tracks.columns:
            raise ValueError(f"tracks table lacks column {col!r}")
    names = set(registry.names)
    parts = []
    for (exp, fov), rows in tracks.groupby(["experiment", "fov_name"], sort=False, observed=True):
        exp, fov = str(exp), str(fov).strip("/")
        shape = image_shapes.get((exp, fov))
        well = fov.rsplit("/", 1)[0]
        if exp not in names or shape is None or well not in registry[exp].well_conditions:
            parts.append(rows)
            continue
        table = validate_tracks(
            rows.drop(columns=["experiment"]).reset_index(drop=True),
            f"Tracks of experiment '{exp}' FOV '{fov}'",
            fov,
            shape,
            keep_extra_columns=True,
        )
        parts.append(table.assign(experiment=exp))
    return pd.concat(parts, ignore_index=True) if parts else tracks


class MultiExperimentIndex:
    """Tracks of all experiments in one table, with lineage, patch origins and valid anchors.

    Parameters
    ----------
    registry : ExperimentRegistry
        The experiments to index.
    yx_patch_size : tuple[int, int]
        Patch size read around each cell (before any final crop).
    tau_range_hours : tuple[float, float]
        Range of time offsets between anchor and positive, in hours.
    tau_decay_rate : float
        Preference for small offsets when sampling positives (see ``dynaclr.tau_sampling``).
    include_wells : Iterable[str] | None
        Only these wells (``"A/1"``); ``None``: all condition wells.
    exclude_fovs : Iterable[str] | None
        FOVs (``"A/1/0"``) to leave out.
    """

    def __init__(
        self,
        registry: ExperimentRegistry,
        yx_patch_size: tuple[int, int] = (256, 256),
        tau_range_hours: tuple[float, float] = (0.5, 2.0),
        tau_decay_rate: float = 2.0,
        include_wells: Iterable[str] | None = None,
        exclude_fovs: Iterable[str] | None = None,
    ) -> None:
        from iohub.ngff import open_ome_zarr

        include = None if include_wells is None else {w.strip("/") for w in include_wells}
        exclude = set() if exclude_fovs is None else {f.strip("/") for f in exclude_fovs}
        tables, shapes = [], {}
        for exp in registry:
            wells = exp.well_conditions
            with open_ome_zarr(exp.data_path, mode="r", layout="hcs") as plate:
                for fov_name, position in plate.positions():
                    fov_name = fov_name.strip("/")
                    well = fov_name.rsplit("/", 1)[0]
                    if well not in wells or fov_name in exclude:
                        continue
                    if include is not None and well not in include:
                        continue
                    shape = tuple(int(s) for s in position["0"].shape)
                    shapes[(exp.name, fov_name)] = shape
                    df = read_tracks_csv(
                        find_tracks_csv(exp.tracks_path, fov_name),
                        fov_name,
                        shape,
                        keep_extra_columns=True,
                    )
                    df["experiment"] = exp.name
                    tables.append(df)
        if not tables:
            raise ValueError(
                f"no FOV with tracks in the condition wells of experiments {registry.names}"
            )
        self._build(
            registry,
            pd.concat(tables, ignore_index=True),
            shapes,
            yx_patch_size,
            tau_range_hours,
            tau_decay_rate,
            validated=True,
        )

    @classmethod
    def from_tables(
        cls,
        registry: ExperimentRegistry,
        tracks: pd.DataFrame,
        image_shapes: Mapping[tuple[str, str], tuple[int, ...]],
        yx_patch_size: tuple[int, int] = (256, 256),
        tau_range_hours: tuple[float, float] = (0.5, 2.0),
        tau_decay_rate: float = 2.0,
    ) -> MultiExperimentIndex:
        """Index tracks already in memory.

        Parameters
        ----------
        tracks : pd.DataFrame
            Rows of all experiments with ``experiment``, ``fov_name`` and the tracks CSV
            columns (``track_id, t, y, x`` required; ``id, parent_track_id, parent_id, z``
            optional). Rows of FOVs outside the condition wells are dropped.
        image_shapes : Mapping[tuple[str, str], tuple[int, ...]]
            ``(experiment, fov_name) -> (T, C, Z, Y, X)`` of each FOV's image.

        Raises
        ------
        ValueError
            As :func:`viscy_data.validate_tracks` for rows of condition wells (missing
            column, non-integer ids, ``t`` or centroid outside the image, duplicate rows),
            naming the experiment and FOV.
        """
        self = cls.__new__(cls)
        self._build(registry, tracks, image_shapes, yx_patch_size, tau_range_hours, tau_decay_rate)
        return self

    # ------------------------------------------------------------------------------ build
    def _build(
        self,
        registry: ExperimentRegistry,
        tracks: pd.DataFrame,
        image_shapes: Mapping[tuple[str, str], tuple[int, ...]],
        yx_patch_size: tuple[int, int],
        tau_range_hours: tuple[float, float],
        tau_decay_rate: float,
        validated: bool = False,
    ) -> None:
        if not validated:
            tracks = _validate_condition_tracks(registry, tracks, image_shapes)
        self.registry = registry
        self.yx_patch_size = (int(yx_patch_size[0]), int(yx_patch_size[1]))
        self.tau_range_hours = (float(tau_range_hours[0]), float(tau_range_hours[1]))
        self.tau_decay_rate = float(tau_decay_rate)
        self.image_shapes = {k: tuple(int(s) for s in v) for k, v in image_shapes.items()}

        for col in ("experiment", "fov_name", *_REQUIRED_TRACK_COLUMNS):
            if col not in tracks.columns:
                raise ValueError(f"tracks table lacks column {col!r}")
        # work on numpy columns; the table is built once, after filtering
        n_rows = len(tracks)
        cols: dict[str, np.ndarray] = {c: tracks[c].to_numpy() for c in _REQUIRED_TRACK_COLUMNS}
        for col, default in _OPTIONAL_TRACK_COLUMNS.items():
            if col in tracks.columns:
                cols[col] = tracks[col].fillna(default).to_numpy()
            else:
                cols[col] = np.full(n_rows, default)
        for col in ("track_id", "t", "id", "parent_track_id", "parent_id"):
            cols[col] = cols[col].astype(np.int64, copy=False)
        extra = [
            c
            for c in tracks.columns
            if c not in cols and c not in ("experiment", "fov_name", "condition", "well_name")
        ]

        # per-FOV attributes, computed on the (few) FOVs and broadcast through codes
        # factorize on the few distinct values, never per-row string work
        exp_codes, exp_values = pd.factorize(tracks["experiment"])
        name_codes, name_values = pd.factorize(tracks["fov_name"])
        exp_values = np.array([str(v) for v in exp_values], dtype=object)
        name_values = np.array([str(v).strip("/") for v in name_values], dtype=object)
        pair = exp_codes.astype(np.int64) * max(len(name_values), 1) + name_codes
        fov_codes, pair_values = pd.factorize(pair)
        fov_exp = exp_values[np.asarray(pair_values) // max(len(name_values), 1)]
        fov_name = name_values[np.asarray(pair_values) % max(len(name_values), 1)]
        fov_well = np.array([f.rsplit("/", 1)[0] for f in fov_name], dtype=object)
        unknown = sorted(set(fov_exp) - set(registry.names))
        if unknown:
            raise ValueError(f"tracks of experiments {unknown} not in the registry")
        fov_cond = np.array(
            [registry[e].well_conditions.get(w) for e, w in zip(fov_exp, fov_well, strict=True)],
            dtype=object,
        )
        missing_shape = [
            f"{e}:{f}"
            for e, f, c in zip(fov_exp, fov_name, fov_cond, strict=True)
            if c is not None and (e, f) not in self.image_shapes
        ]
        if missing_shape:
            raise ValueError(f"no image shape for FOV(s) {missing_shape[:5]}")
        fov_shapes = [
            self.image_shapes.get((e, f), (0, 0, 0, 0, 0))
            for e, f in zip(fov_exp, fov_name, strict=True)
        ]
        shape = np.array(fov_shapes, dtype=np.int64).reshape(-1, 5)
        ph, pw = self.yx_patch_size
        small = [
            f"{e}:{f} ({s[3]}x{s[4]})"
            for e, f, c, s in zip(fov_exp, fov_name, fov_cond, shape, strict=True)
            if c is not None and (s[3] < ph or s[4] < pw)
        ]
        if small:
            raise ValueError(f"yx_patch_size {self.yx_patch_size} exceeds FOV image(s) {small}")
        exps = {e.name: e for e in registry}
        fov_start = np.array([exps[e].start_hpi for e in fov_exp], dtype=np.float64)
        fov_interval = np.array([exps[e].interval_minutes for e in fov_exp], dtype=np.float64)
        fov_fluo = np.array([exps[e].fluorescence_channel for e in fov_exp], dtype=object)
        tau_frames = [
            tau_range_frames(self.tau_range_hours, exps[e].interval_minutes) for e in fov_exp
        ]
        fov_tau_lo = np.array([lo for lo, _ in tau_frames], dtype=np.int64)
        fov_tau_hi = np.array([hi for _, hi in tau_frames], dtype=np.int64)

        # keep rows of condition wells (validated: centroids and frames lie inside the image)
        keep = np.array([c is not None for c in fov_cond])[fov_codes]
        row_shape = shape[fov_codes]
        df = pd.DataFrame({c: v[keep] for c, v in cols.items()})
        for col in extra:
            df[col] = tracks[col].to_numpy()[keep]
        fov_codes = fov_codes[keep]
        row_shape = row_shape[keep]
        if len(df) == 0:
            raise ValueError("no cell-timepoint in the condition wells")
        for col in ("z", "y", "x"):  # pixels (validated rows are integers already)
            df[col] = df[col].astype(np.int64, copy=False)

        def categorical(values: np.ndarray) -> pd.Categorical:
            cats, inv = np.unique(values.astype(str), return_inverse=True)
            return pd.Categorical.from_codes(inv[fov_codes], categories=cats)

        df["experiment"] = categorical(fov_exp)
        df["fov_name"] = categorical(fov_name)
        df["well_name"] = categorical(fov_well)
        df["condition"] = categorical(np.array([c or "" for c in fov_cond], dtype=object))
        df["fluorescence_channel"] = categorical(fov_fluo)
        df["hours_post_infection"] = (
            fov_start[fov_codes] + df["t"].to_numpy() * fov_interval[fov_codes] / 60.0
        )
        df["y_origin"] = patch_starts(df["y"].to_numpy(), ph, row_shape[:, 3])
        df["x_origin"] = patch_starts(df["x"].to_numpy(), pw, row_shape[:, 4])

        # tracks: one code per (FOV, track_id); parent code through the same FOV
        track_ids = df["track_id"].to_numpy()
        if track_ids.min() < 0 or track_ids.max() >= 2**31:
            raise ValueError("track_id values must be in [0, 2**31)")
        fov_track = (fov_codes.astype(np.int64) << 32) | track_ids
        track_code, track_keys = pd.factorize(fov_track, sort=True)
        track_keys = np.asarray(track_keys)
        first = np.full(len(track_keys), -1, dtype=np.int64)
        first[track_code[::-1]] = np.arange(len(df))[::-1]  # first row of each track
        parent_tid = df["parent_track_id"].to_numpy()[first]
        parent_key = ((track_keys >> 32) << 32) | np.where(parent_tid >= 0, parent_tid, 0)
        parent = np.searchsorted(track_keys, parent_key)
        parent = np.where(
            (parent_tid >= 0)
            & (parent < len(track_keys))
            & (track_keys[np.minimum(parent, len(track_keys) - 1)] == parent_key),
            parent,
            -1,
        )
        parent[parent == np.arange(len(parent))] = -1  # a track is not its own parent
        self._track_parent = parent

        # ancestor -> descendant pairs (self included) by walking up the generations
        desc_list, anc_list = [np.arange(len(parent))], [np.arange(len(parent))]
        anc = parent.copy()
        cur = np.arange(len(parent))
        for _ in range(len(parent)):
            has = anc >= 0
            if not has.any():
                break
            cur, anc = cur[has], anc[has]
            desc_list.append(cur)
            anc_list.append(anc)
            anc = parent[anc]
        else:
            raise ValueError("parent_track_id links form a cycle")
        pair_desc = np.concatenate(desc_list)
        pair_anc = np.concatenate(anc_list)
        root = np.arange(len(parent))
        for _ in range(len(anc_list)):
            root = np.where(parent[root] >= 0, parent[root], root)

        # lineage table: (ancestor, t) -> observation row of a descendant (self first)
        by_track = np.argsort(track_code, kind="stable")
        counts = np.bincount(track_code, minlength=len(track_keys))
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        n_per_pair = counts[pair_desc]
        pair_of = np.repeat(np.arange(len(pair_desc)), n_per_pair)
        offset = np.arange(len(pair_of)) - np.repeat(np.cumsum(n_per_pair) - n_per_pair, n_per_pair)
        lin_rows = by_track[starts[pair_desc][pair_of] + offset]
        lin_anc = pair_anc[pair_of]
        lin_keys = _key(lin_anc, df["t"].to_numpy()[lin_rows])
        not_self = (pair_anc != pair_desc)[pair_of]
        order = np.lexsort((not_self, lin_keys))
        self._lin_keys = lin_keys[order]
        self._lin_rows = lin_rows[order]
        self._lin_self = ~not_self[order]

        # global ids, built on unique tracks then broadcast
        track_fov = (track_keys >> 32).astype(np.int64)
        track_tid = (track_keys & 0xFFFFFFFF).astype(np.int64)
        gid = pd.Series(fov_exp[track_fov]).astype(str) + "/" + pd.Series(fov_name[track_fov])
        gid = (gid + "/" + pd.Series(track_tid).astype(str)).to_numpy()
        # (experiment, FOV, track_id) is unique per track, so the ids are unique categories
        df["global_track_id"] = pd.Categorical.from_codes(track_code, categories=pd.Index(gid))
        df["lineage_id"] = pd.Categorical.from_codes(root[track_code], categories=pd.Index(gid))
        self._track_code = track_code.astype(np.int64)
        self._row_tau_lo = fov_tau_lo[fov_codes]
        self._row_tau_hi = fov_tau_hi[fov_codes]
        self.tracks = df

        # valid anchors: some offset in the tau range has a same-lineage observation
        tt = df["t"].to_numpy()
        valid = np.zeros(len(df), dtype=bool)
        span = self._row_tau_hi - self._row_tau_lo
        for k in range(int(span.max()) + 1):
            todo = ~valid & (span >= k)
            if not todo.any():
                break
            found, _ = self._lookup(self._track_code[todo], tt[todo] + self._row_tau_lo[todo] + k)
            valid[np.flatnonzero(todo)[found]] = True
        self.anchor_rows = np.flatnonzero(valid)
        self.valid_anchors = df.iloc[self.anchor_rows].reset_index(drop=True)
        self.valid_anchors["tracks_row"] = self.anchor_rows

    # ------------------------------------------------------------------------------ queries
    def _lookup(self, track_code: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether lineage ``track_code`` is observed at ``t`` and the first table position."""
        keys = _key(track_code, t)
        pos = np.searchsorted(self._lin_keys, keys)
        ok = pos < len(self._lin_keys)
        ok[ok] = self._lin_keys[pos[ok]] == keys[ok]
        return ok, pos

    def positive_rows(
        self, anchor_rows: np.ndarray, tau: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Row of the positive for each anchor at offset ``tau`` (frames), or -1 if none.

        The anchor's own track is used when observed at ``t + tau``; otherwise a descendant
        track observed then (after a division), chosen at random among the daughters.
        """
        anchor_rows = np.asarray(anchor_rows, dtype=np.int64)
        t = self.tracks["t"].to_numpy()[anchor_rows] + np.asarray(tau, dtype=np.int64)
        found, pos = self._lookup(self._track_code[anchor_rows], t)
        out = np.full(len(anchor_rows), -1, dtype=np.int64)
        if not found.any():
            return out
        p = pos[found]
        keys = self._lin_keys[p]
        end = np.searchsorted(self._lin_keys, keys, side="right")
        is_self = self._lin_self[p]
        # descendants only: skip the self entry (sorted first) when there is none for self
        pick = np.where(is_self, p, p + (rng.random(len(p)) * (end - p)).astype(np.int64))
        out[found] = self._lin_rows[pick]
        return out

    def sample_positives(
        self, anchor_rows: np.ndarray, rng: np.random.Generator, max_tries: int = 8
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw a tau per anchor (exponential decay in its experiment's frame range) and the
        positive row through lineage; anchors whose draw has no positive redraw, then take
        the smallest offset that has one.

        Returns
        -------
        tuple[np.ndarray, np.ndarray]
            ``(positive_rows, tau_frames)``; rows are -1 only for anchors that are not valid.
        """
        anchor_rows = np.asarray(anchor_rows, dtype=np.int64)
        lo, hi = self._row_tau_lo[anchor_rows], self._row_tau_hi[anchor_rows]
        tau = np.zeros(len(anchor_rows), dtype=np.int64)
        pos = np.full(len(anchor_rows), -1, dtype=np.int64)
        # draw per distinct (lo, hi), i.e. per experiment
        ranges = np.unique(np.stack([lo, hi], axis=1), axis=0)
        for _ in range(max_tries):
            todo = pos < 0
            if not todo.any():
                break
            for a, b in ranges:
                sel = todo & (lo == a) & (hi == b)
                if sel.any():
                    p = tau_probabilities(int(a), int(b), self.tau_decay_rate)
                    tau[sel] = a + rng.choice(len(p), size=int(sel.sum()), p=p)
            idx = np.flatnonzero(todo)
            pos[idx] = self.positive_rows(anchor_rows[idx], tau[idx], rng)
        span = hi - lo
        for k in range(int(span.max()) + 1 if len(span) else 0):
            todo = (pos < 0) & (span >= k)
            if not todo.any():
                break
            idx = np.flatnonzero(todo)
            found = self.positive_rows(anchor_rows[idx], lo[idx] + k, rng)
            pos[idx] = found
            tau[idx[found >= 0]] = lo[idx[found >= 0]] + k
        return pos, tau

    def __len__(self) -> int:
        return len(self.valid_anchors)

    def __repr__(self) -> str:
        return (
            f"MultiExperimentIndex(experiments={self.registry.names}, "
            f"cell_timepoints={len(self.tracks)}, valid_anchors={len(self.valid_anchors)})"
        )
