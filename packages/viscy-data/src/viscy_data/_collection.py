"""Reading the collection YAML of 0.1.0 (``viscy_data.collection``'s layout), for
:func:`viscy_data.cell_index.build_timelapse_cell_index`.

A collection names experiments (one HCS plate and its tracks each) with their channels,
the wells of each perturbation and the imaging metadata::

    name: my_collection
    datasets_root: /data          # optional, replaces ${datasets_root} in paths
    experiments:
      - name: exp1
        data_path: ${datasets_root}/plate.zarr
        tracks_path: ${datasets_root}/tracks
        channels: [{name: Phase3D, marker: Phase3D}, {name: GFP, marker: SEC61B, wells: [B/2]}]
        perturbation_wells: {uninfected: [A/1], infected: [B/2]}
        interval_minutes: 15
        start_hpi: 2.0

Keys 0.1.0 ignores (provenance, fov_records, date, moi, unknown keys) are ignored here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ROOT = "${datasets_root}"


@dataclass
class ChannelEntry:
    name: str
    marker: str
    wells: list[str] = field(default_factory=list)


@dataclass
class ExperimentEntry:
    name: str
    data_path: str
    tracks_path: str
    channels: list[ChannelEntry]
    perturbation_wells: dict[str, list[str]]
    interval_minutes: float = 30.0
    start_hpi: float = 0.0
    organelle: str = ""
    microscope: str = ""
    pixel_size_xy_um: float | None = None
    pixel_size_z_um: float | None = None
    exclude_fovs: list[str] = field(default_factory=list)

    def perturbation_of(self, well: str) -> str | None:
        """The perturbation of a well (the first one listing it), or None."""
        for perturbation, wells in self.perturbation_wells.items():
            if well in wells:
                return perturbation
        return None


def _require(entry: dict, key: str, where: str) -> Any:
    if key not in entry or entry[key] is None:
        raise ValueError(f"{where}: missing required key {key!r}")
    return entry[key]


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _experiment(entry: Any, index: int, root: str | None, source: str) -> ExperimentEntry:
    where = f"{source}: experiments[{index}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping, got {entry!r}")
    name = str(_require(entry, "name", where))
    where = f"{source}: experiment {name!r}"
    paths = {}
    for key in ("data_path", "tracks_path"):
        value = str(_require(entry, key, where))
        if root is not None:
            value = value.replace(_ROOT, root.rstrip("/"))
        paths[key] = value
    channels = []
    for i, ch in enumerate(entry.get("channels") or []):
        if not isinstance(ch, dict):
            raise ValueError(f"{where}: channels[{i}] must be a mapping, got {ch!r}")
        channels.append(
            ChannelEntry(
                name=str(_require(ch, "name", f"{where}: channels[{i}]")),
                marker=str(_require(ch, "marker", f"{where}: channels[{i}]")),
                wells=[str(w) for w in ch.get("wells") or []],
            )
        )
    if not channels:  # 0.1.0: channels derived from channel_names, marker = name
        channels = [ChannelEntry(str(c), str(c)) for c in entry.get("channel_names") or []]
    perturbation_wells = entry.get("perturbation_wells") or {}
    if not isinstance(perturbation_wells, dict) or not perturbation_wells:
        raise ValueError(f"{where}: perturbation_wells must not be empty")
    return ExperimentEntry(
        name=name,
        channels=channels,
        perturbation_wells={str(k): [str(w) for w in v] for k, v in perturbation_wells.items()},
        interval_minutes=float(entry.get("interval_minutes", 30.0)),
        start_hpi=float(entry.get("start_hpi", 0.0)),
        organelle=str(entry.get("organelle") or ""),
        microscope=str(entry.get("microscope") or ""),
        pixel_size_xy_um=_optional_float(entry.get("pixel_size_xy_um")),
        pixel_size_z_um=_optional_float(entry.get("pixel_size_z_um")),
        exclude_fovs=[str(f) for f in entry.get("exclude_fovs") or []],
        **paths,
    )


def load_collection(path: str | Path) -> tuple[str, list[ExperimentEntry]]:
    """``(name, experiments)`` of a collection YAML; ``ValueError`` naming the file and the
    experiment for a missing key, an empty ``perturbation_wells`` or a repeated name."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"collection YAML {path} does not exist")
    with open(path) as f:
        content = yaml.safe_load(f)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping with 'name' and 'experiments'")
    name = str(_require(content, "name", str(path)))
    entries = _require(content, "experiments", str(path))
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'experiments' must be a list")
    root = content.get("datasets_root")
    experiments = [_experiment(e, i, root, str(path)) for i, e in enumerate(entries)]
    seen: set[str] = set()
    for exp in experiments:
        if exp.name in seen:
            raise ValueError(f"{path}: duplicate experiment name {exp.name!r}")
        seen.add(exp.name)
    return name, experiments
