"""Experiments to pool for training, and how their channels map onto the model's input.

An :class:`ExperimentConfig` describes one time-lapse plate (OME-Zarr) with its tracks, the
wells of each condition and the frame interval. An :class:`ExperimentRegistry` holds several,
validates them, and resolves ``training_channels`` into the list of model input channels
(``active_channels``) and, per experiment, where each of them sits in the plate
(``channel_maps``).

YAML layout read by :meth:`ExperimentRegistry.from_yaml` (relative paths are relative to the
YAML file)::

    training_channels: shared        # or "all", or an explicit list of channel names
    experiments:
      - name: denv_2024_01
        data_path: plate_a.zarr
        tracks_path: tracks_a
        channel_names: [Phase3D, GFP]
        condition_wells: {uninfected: [A/1], infected: [B/1]}
        interval_minutes: 30
        start_hpi: 3.0               # hours post infection at frame 0
        organelle: ER
        date: "2024-01-15"
        moi: 5.0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["ExperimentConfig", "ExperimentRegistry"]

_PHASE_HINTS = ("phase", "brightfield", "bf", "dic")


@dataclass
class ExperimentConfig:
    """One time-lapse experiment (plate + tracks) to pool for training.

    Parameters
    ----------
    name : str
        Unique experiment name (becomes the ``experiment`` column).
    data_path : str
        OME-Zarr HCS plate.
    tracks_path : str
        Root of the tracks CSVs, laid out as ``<tracks_path>/<row>/<col>/<fov>/*.csv``.
    channel_names : list[str]
        Channels of the plate used by this experiment (a subset of the plate's channels).
    condition_wells : dict[str, list[str]]
        Condition name -> wells (``"A/1"``) imaged under it; other wells are ignored.
    interval_minutes : float
        Minutes between frames.
    start_hpi : float
        Hours post infection (perturbation) at frame 0.
    organelle : str
        Labelled organelle or reporter (metadata).
    date : str
        Acquisition date (metadata).
    moi : float
        Multiplicity of infection (metadata).
    fluorescence_channel : str | None
        The reporter channel; ``None`` picks the first channel that is not label-free.
    """

    name: str
    data_path: str
    tracks_path: str
    channel_names: list[str]
    condition_wells: dict[str, list[str]]
    interval_minutes: float
    start_hpi: float = 0.0
    organelle: str = ""
    date: str = ""
    moi: float = 0.0
    fluorescence_channel: str | None = None

    def __post_init__(self) -> None:
        self.data_path = str(self.data_path)
        self.tracks_path = str(self.tracks_path)
        self.channel_names = [str(c) for c in self.channel_names]
        self.condition_wells = {
            str(cond): [str(w).strip("/") for w in wells]
            for cond, wells in dict(self.condition_wells).items()
        }
        self.interval_minutes = float(self.interval_minutes)
        self.start_hpi = float(self.start_hpi)
        if self.fluorescence_channel is None:
            self.fluorescence_channel = next(
                (c for c in self.channel_names if not any(h in c.lower() for h in _PHASE_HINTS)),
                "",
            )

    @property
    def well_conditions(self) -> dict[str, str]:
        """Well (``"A/1"``) -> condition."""
        return {w: cond for cond, wells in self.condition_wells.items() for w in wells}

    def validate(self, check_paths: bool = True) -> None:
        """Raise ``ValueError`` naming the experiment and the problem if the config is invalid."""
        where = f"experiment {self.name!r}"
        if not self.name:
            raise ValueError("experiment name must be a non-empty string")
        if not self.channel_names:
            raise ValueError(f"{where}: channel_names is empty")
        dupes = sorted({c for c in self.channel_names if self.channel_names.count(c) > 1})
        if dupes:
            raise ValueError(f"{where}: duplicate channel names {dupes}")
        if self.fluorescence_channel and self.fluorescence_channel not in self.channel_names:
            raise ValueError(
                f"{where}: fluorescence_channel {self.fluorescence_channel!r} is not in "
                f"channel_names {self.channel_names}"
            )
        if not self.condition_wells or not any(self.condition_wells.values()):
            raise ValueError(f"{where}: condition_wells maps no condition to any well")
        seen: dict[str, str] = {}
        for cond, wells in self.condition_wells.items():
            for well in wells:
                if well.count("/") != 1:
                    raise ValueError(f"{where}: well {well!r} must look like 'A/1'")
                if well in seen:
                    raise ValueError(
                        f"{where}: well {well!r} is listed under both {seen[well]!r} and {cond!r}"
                    )
                seen[well] = cond
        if not self.interval_minutes > 0:
            raise ValueError(f"{where}: interval_minutes must be > 0, got {self.interval_minutes}")
        if check_paths:
            if not Path(self.data_path).exists():
                raise ValueError(f"{where}: data_path {self.data_path} does not exist")
            if not Path(self.tracks_path).is_dir():
                raise ValueError(f"{where}: tracks_path {self.tracks_path} is not a directory")


class ExperimentRegistry:
    """Validated set of experiments and the channel mapping shared by all of them.

    Parameters
    ----------
    experiments : Sequence[ExperimentConfig]
        The experiments (unique names).
    training_channels : "shared" | "all" | list[str]
        Model input channels: the channels every experiment has (``"shared"``, in the first
        experiment's order), every channel of any experiment (``"all"``; an experiment
        missing one gets zeros there), or an explicit list (each must exist in every
        experiment).
    check_paths : bool
        Check that data and tracks paths exist.
    """

    def __init__(
        self,
        experiments: Sequence[ExperimentConfig],
        training_channels: Literal["shared", "all"] | Sequence[str] = "shared",
        check_paths: bool = True,
    ) -> None:
        experiments = list(experiments)
        if not experiments:
            raise ValueError("ExperimentRegistry needs at least one experiment")
        names = [e.name for e in experiments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate experiment names: {dupes}")
        for exp in experiments:
            exp.validate(check_paths=check_paths)
        self.experiments = experiments
        self.check_paths = check_paths
        self.training_channels = (
            training_channels if isinstance(training_channels, str) else list(training_channels)
        )
        self.active_channels = self._resolve_channels(self.training_channels)
        self.channel_maps: dict[str, dict[str, int]] = {
            e.name: {
                c: e.channel_names.index(c) for c in self.active_channels if c in e.channel_names
            }
            for e in experiments
        }

    def _resolve_channels(self, training_channels: str | list[str]) -> list[str]:
        if training_channels == "shared":
            others = [set(e.channel_names) for e in self.experiments[1:]]
            shared = [c for c in self.experiments[0].channel_names if all(c in o for o in others)]
            if not shared:
                raise ValueError(
                    "training_channels='shared' but the experiments share no channel: "
                    + ", ".join(f"{e.name}={e.channel_names}" for e in self.experiments)
                )
            return shared
        if training_channels == "all":
            union: list[str] = []
            for exp in self.experiments:
                union += [c for c in exp.channel_names if c not in union]
            return union
        if isinstance(training_channels, str):
            raise ValueError(
                f"training_channels must be 'shared', 'all' or a list of channel names, "
                f"got {training_channels!r}"
            )
        if not training_channels:
            raise ValueError("training_channels is an empty list")
        for exp in self.experiments:
            missing = [c for c in training_channels if c not in exp.channel_names]
            if missing:
                raise ValueError(
                    f"training_channels {missing} not in experiment {exp.name!r} "
                    f"(channels: {exp.channel_names})"
                )
        return list(training_channels)

    # ------------------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.experiments)

    def __iter__(self) -> Iterator[ExperimentConfig]:
        return iter(self.experiments)

    def __getitem__(self, name: str) -> ExperimentConfig:
        for exp in self.experiments:
            if exp.name == name:
                return exp
        raise KeyError(f"no experiment named {name!r}; known: {self.names}")

    def __repr__(self) -> str:
        return f"ExperimentRegistry(names={self.names}, active_channels={self.active_channels})"

    @property
    def names(self) -> list[str]:
        """Experiment names in registry order."""
        return [e.name for e in self.experiments]

    def source_indices(self, name: str) -> list[int]:
        """Plate channel index per active channel for one experiment (-1: missing, zeros)."""
        mapping = self.channel_maps[name]
        return [mapping.get(c, -1) for c in self.active_channels]

    def subset(self, names: Sequence[str]) -> ExperimentRegistry:
        """Registry of some experiments that keeps this registry's ``active_channels``."""
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ValueError(f"unknown experiment names {unknown}; known: {self.names}")
        sub = ExperimentRegistry.__new__(ExperimentRegistry)
        sub.experiments = [e for e in self.experiments if e.name in set(names)]
        sub.check_paths = self.check_paths
        sub.training_channels = self.training_channels
        sub.active_channels = list(self.active_channels)
        sub.channel_maps = {n: dict(self.channel_maps[n]) for n in sub.names}
        return sub

    def validate_stores(self) -> None:
        """Open each plate's metadata and check channels and condition wells exist."""
        from iohub.ngff import open_ome_zarr

        for exp in self.experiments:
            with open_ome_zarr(exp.data_path, mode="r", layout="hcs") as plate:
                plate_channels = list(plate.channel_names)
                missing = [c for c in exp.channel_names if c not in plate_channels]
                if missing:
                    raise ValueError(
                        f"experiment {exp.name!r}: channels {missing} not in plate "
                        f"{exp.data_path} (plate channels: {plate_channels})"
                    )
                wells = {name for name, _ in plate.wells()}
                absent = [w for w in exp.well_conditions if w not in wells]
                if absent:
                    raise ValueError(
                        f"experiment {exp.name!r}: wells {absent} not in plate {exp.data_path} "
                        f"(wells: {sorted(wells)})"
                    )

    # ------------------------------------------------------------------------- construction
    @classmethod
    def from_dicts(
        cls,
        experiments: Sequence[dict[str, Any]],
        training_channels: Literal["shared", "all"] | Sequence[str] = "shared",
        base_dir: str | Path | None = None,
        check_paths: bool = True,
    ) -> ExperimentRegistry:
        """Build from plain dicts (relative paths resolved against ``base_dir``)."""
        fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
        configs = []
        for i, entry in enumerate(experiments):
            unknown = sorted(set(entry) - fields)
            if unknown:
                raise ValueError(
                    f"experiment #{i} ({entry.get('name', '?')}): unknown keys {unknown}; "
                    f"allowed: {sorted(fields)}"
                )
            missing = sorted(
                f.name
                for f in dataclasses.fields(ExperimentConfig)
                if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
                and f.name not in entry
            )
            if missing:
                raise ValueError(
                    f"experiment #{i} ({entry.get('name', '?')}): missing keys {missing}"
                )
            entry = dict(entry)
            if base_dir is not None:
                for key in ("data_path", "tracks_path"):
                    path = Path(str(entry[key])).expanduser()
                    entry[key] = str(path if path.is_absolute() else Path(base_dir) / path)
            configs.append(ExperimentConfig(**entry))
        return cls(configs, training_channels=training_channels, check_paths=check_paths)

    @classmethod
    def from_yaml(cls, path: str | Path, check_paths: bool = True) -> ExperimentRegistry:
        """Read a registry from YAML (layout in the module docstring)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"experiments YAML {path} does not exist")
        with open(path) as f:
            content = yaml.safe_load(f)
        if isinstance(content, list):
            content = {"experiments": content}
        if not isinstance(content, dict) or "experiments" not in content:
            raise ValueError(f"{path}: expected a mapping with an 'experiments' list")
        try:
            return cls.from_dicts(
                content["experiments"],
                training_channels=content.get("training_channels", "shared"),
                base_dir=path.parent,
                check_paths=check_paths,
            )
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
