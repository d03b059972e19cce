"""``viscy check -c CONFIG.yml``: validate a run before it starts, reporting every problem.

A GPU job that dies after an hour on a typo, a missing channel or a damaged chunk is the most
expensive failure there is. :func:`check_config` reads the same YAML that ``fit`` takes and
runs, for the stage the config is for,

1. static checks of the ``data`` section against every plate it names (paths, NGFF version,
   channels, z-range, patch sizes, normalization metadata, tracks tables) and of the ``model``
   section against the data (input channels, stack depth), plus a warning when
   ``trainer.devices`` / ``strategy`` do not fit this machine;
2. when those find no error: the DataModule and the model are instantiated from the config and
   ``setup(stage)`` runs, so every setup-time validation of the pipeline applies too, and the
   train / validation sets must be non-empty;
3. with ``--read N`` (or ``--read all``): N random chunks of every FOV (or all of them) are
   decoded, so damaged data is found before an epoch reaches it.

Every problem is one line (what, where, the offending value, the fix); the exit status is 0
only when the run can start. Applications reuse it: ``dynaclr check`` and ``cytoland check``
call :func:`check_main` with their own ``prog`` and extra checks (a callable taking the
:class:`CheckContext`, e.g. DynaCLR's experiments registry).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "CheckContext",
    "CheckReport",
    "PlateInfo",
    "Problem",
    "check_config",
    "check_main",
    "check_model_against_data",
    "check_plate_inputs",
    "config_normalizations",
    "config_patch_sizes",
    "open_plate_info",
]

Severity = Literal["error", "warning"]
ExtraCheck = Callable[["CheckContext"], None]

SUPPORTED_NGFF = ("0.4", "0.5")
_NORMALIZE_LEVELS = ("dataset_statistics", "fov_statistics", "timepoint_statistics")


@dataclass(frozen=True)
class Problem:
    """One thing that stops (``error``) or may spoil (``warning``) the run."""

    what: str
    where: str
    value: str
    fix: str
    severity: Severity = "error"

    def line(self) -> str:
        return f"{self.severity.upper()}: {self.what} [{self.where}] {self.value} -> {self.fix}"


@dataclass
class CheckReport:
    """Problems found by the checks, in the order found, and what was checked."""

    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def error(self, what: str, where: str, value: Any, fix: str) -> None:
        self.problems.append(Problem(what, where, _quote(value), fix, "error"))

    def warn(self, what: str, where: str, value: Any, fix: str) -> None:
        self.problems.append(Problem(what, where, _quote(value), fix, "warning"))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """Whether the run can start (warnings allowed)."""
        return not self.errors

    def summary(self) -> str:
        verdict = "the run can start" if self.ok else "fix the errors before starting the run"
        return (
            f"check: {len(self.errors)} error(s), {len(self.warnings)} warning(s) in "
            f"{self.seconds:.1f} s ({', '.join(self.checked) or 'nothing'} checked): {verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "seconds": round(self.seconds, 3),
            "checked": list(self.checked),
            "problems": [asdict(p) for p in self.problems],
        }


def _quote(value: Any) -> str:
    if isinstance(value, str) and "=" in value:
        return value  # already "name=value"
    return repr(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


# ---------------------------------------------------------------------- plates


@dataclass
class PlateInfo:
    """Metadata of one OME-Zarr plate, read once (no pixel data)."""

    path: Path
    version: str
    channel_names: list[str]
    fovs: dict[str, tuple[int, ...]]  # FOV name -> (T, C, Z, Y, X)
    channels_of: dict[str, list[str]]  # FOV name -> its channel names
    norm_meta: dict[str, dict | None]  # FOV name -> .zattrs["normalization"]


def open_plate_info(path: str | Path, report: CheckReport, where: str) -> PlateInfo | None:
    """Read a plate's metadata, or record why it cannot be read (and return None)."""
    path = Path(path)
    if not path.exists():
        report.error(
            "plate not found", where, f"data_path={str(path)!r}", "point it at an OME-Zarr plate"
        )
        return None
    try:
        from iohub.ngff import Plate, open_ome_zarr

        node = open_ome_zarr(path, mode="r", layout="auto")
    except Exception as err:
        report.error(
            "not an OME-Zarr plate",
            where,
            f"data_path={str(path)!r} ({type(err).__name__}: {err})",
            "give the plate's root folder (the one with the HCS 'plate' metadata)",
        )
        return None
    try:
        if not isinstance(node, Plate):
            report.error(
                "not an HCS plate",
                where,
                f"data_path={str(path)!r} is an OME-Zarr {type(node).__name__}",
                "give an HCS plate (row/column/FOV layout)",
            )
            return None
        version = str(getattr(node, "version", ""))
        if version not in SUPPORTED_NGFF:
            report.error(
                "unsupported NGFF version",
                where,
                f"version={version!r} in {path}",
                f"convert the plate to NGFF {' or '.join(SUPPORTED_NGFF)}",
            )
        fovs: dict[str, tuple[int, ...]] = {}
        channels_of: dict[str, list[str]] = {}
        norm_meta: dict[str, dict | None] = {}
        for name, position in node.positions():
            name = name.strip("/")
            try:
                array = position["0"]
            except KeyError:
                report.error(
                    "FOV without image '0'",
                    f"{path} FOV {name}",
                    f"arrays={sorted(position.array_keys())}",
                    "write the full-resolution image as array '0'",
                )
                continue
            fovs[name] = tuple(int(s) for s in array.shape)
            channels_of[name] = list(position.channel_names)
            norm_meta[name] = position.zattrs.get("normalization")
        if not fovs:
            report.error("plate has no FOVs", where, f"data_path={str(path)!r}", "check the path")
            return None
        return PlateInfo(path, version, list(node.channel_names), fovs, channels_of, norm_meta)
    finally:
        node.close()


def config_normalizations(data_args: Mapping[str, Any]) -> list[tuple[str, list[str], str]]:
    """``(class name, keys, level)`` of every stored-statistics normalization in the config."""
    found = []
    for section in ("normalizations", "augmentations", "gpu_augmentations"):
        for entry in _as_list(data_args.get(section)):
            if not isinstance(entry, Mapping):
                continue
            args = entry.get("init_args", {}) or {}
            level = args.get("level")
            if level is None and "Normalize" in str(entry.get("class_path", "")):
                level = "fov_statistics"
            if level is None:
                continue
            name = str(entry.get("class_path", "?")).rsplit(".", 1)[-1]
            found.append((name, [str(k) for k in _as_list(args.get("keys"))], str(level)))
    return found


def check_plate_inputs(
    report: CheckReport,
    where: str,
    plate: PlateInfo,
    channels: Sequence[str],
    z_range: Sequence[int] | None = None,
    z_window: int | None = None,
    patch_sizes: Mapping[str, Sequence[int]] | None = None,
    normalizations: Sequence[tuple[str, list[str], str]] = (),
    tracks_path: str | Path | None = None,
    fovs: Iterable[str] | None = None,
) -> None:
    """Check channels, Z, patch sizes, normalization metadata and tracks against every FOV.

    Each kind of problem is reported once per plate, naming the first FOVs it concerns.
    """
    names = list(plate.fovs) if fovs is None else [f.strip("/") for f in fovs]
    names = [n for n in names if n in plate.fovs]
    # channels
    for channel in channels:
        lacking = [n for n in names if channel not in plate.channels_of[n]]
        if lacking:
            report.error(
                "unknown channel",
                f"{where}: {plate.path} FOV {_few(lacking)}",
                f"channel={channel!r}",
                f"use one of {plate.channel_names}",
            )
    # Z
    depths = sorted({plate.fovs[n][2] for n in names})
    if z_range is not None and len(z_range) == 2:
        z0, z1 = int(z_range[0]), int(z_range[1])
        bad = [n for n in names if not 0 <= z0 < z1 <= plate.fovs[n][2]]
        if bad:
            report.error(
                "z_range outside the stack",
                f"{where}: {plate.path} FOV {_few(bad)}",
                f"z_range=[{z0}, {z1}]",
                f"use 0 <= start < stop <= {min(plate.fovs[n][2] for n in bad)} "
                f"(Z sizes of the FOVs: {depths})",
            )
    if z_window is not None:
        bad = [n for n in names if plate.fovs[n][2] < int(z_window)]
        if bad:
            report.error(
                "z window deeper than the stack",
                f"{where}: {plate.path} FOV {_few(bad)}",
                f"z_window_size={int(z_window)}",
                f"use at most {min(plate.fovs[n][2] for n in bad)} slices",
            )
    # patch sizes
    for key, size in (patch_sizes or {}).items():
        if size is None or len(size) != 2:
            continue
        py, px = int(size[0]), int(size[1])
        bad = [n for n in names if py > plate.fovs[n][3] or px > plate.fovs[n][4]]
        if bad:
            y, x = plate.fovs[bad[0]][3:]
            report.error(
                "patch larger than the FOV",
                f"{where}: {plate.path} FOV {_few(bad)}",
                f"{key}=[{py}, {px}]",
                f"use at most [{y}, {x}] (the FOV's Y, X)",
            )
    # normalization metadata
    for transform, keys, level in normalizations:
        if level not in _NORMALIZE_LEVELS:
            report.error(
                "unknown normalization level",
                f"{where}: {transform}",
                f"level={level!r}",
                f"use one of {list(_NORMALIZE_LEVELS)}",
            )
            continue
        for key in keys:
            if key not in channels:
                continue
            lacking = [
                n for n in names if not ((plate.norm_meta[n] or {}).get(key, {}) or {}).get(level)
            ]
            if lacking:
                report.error(
                    "normalization metadata missing",
                    f"{where}: {plate.path} FOV {_few(lacking)}",
                    f"{transform} keys={key!r} level={level!r}",
                    f"run `viscy preprocess --data_path {plate.path}`",
                )
    if tracks_path is not None:
        _check_tracks(report, where, plate, Path(tracks_path), names)


def _few(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _check_tracks(
    report: CheckReport, where: str, plate: PlateInfo, root: Path, names: Sequence[str]
) -> None:
    if not root.is_dir():
        report.error(
            "tracks folder not found",
            where,
            f"tracks_path={str(root)!r}",
            "point it at the folder holding <row>/<col>/<fov>/tracks.csv",
        )
        return
    from viscy_data import find_tracks_csv, read_tracks_csv

    for name in names:
        try:
            csv = find_tracks_csv(root, name)
            table = read_tracks_csv(csv, name, plate.fovs[name])
        except (OSError, ValueError) as err:
            report.error(
                "bad tracks table", f"{where}: FOV {name}", str(err), "fix or regenerate the CSV"
            )
            continue
        parents = table["parent_track_id"].to_numpy()
        known = set(table["track_id"].tolist())
        orphans = sorted({int(p) for p in parents if p >= 0 and p not in known})
        if orphans:
            report.warn(
                "parent track not in the table",
                f"{where}: {csv}",
                f"parent_track_id={orphans[:5]}",
                "those cells are treated as having no parent (no positives across divisions)",
            )


# ---------------------------------------------------------------------- config


@dataclass
class CheckContext:
    """What a check gets: the composed config, the stage and the report to add to."""

    config: dict[str, Any]
    stage: str
    report: CheckReport
    plates: dict[str, PlateInfo | None] = field(default_factory=dict)

    @property
    def data_args(self) -> dict[str, Any]:
        return dict((self.config.get("data") or {}).get("init_args") or {})

    @property
    def model_args(self) -> dict[str, Any]:
        return dict((self.config.get("model") or {}).get("init_args") or {})

    def plate(self, path: str | Path, where: str) -> PlateInfo | None:
        """Plate metadata, read once per path."""
        key = str(Path(path).resolve())
        if key not in self.plates:
            self.plates[key] = open_plate_info(path, self.report, where)
        return self.plates[key]


def config_patch_sizes(data_args: Mapping[str, Any]) -> dict[str, Sequence[int]]:
    """The patch-size arguments a data section sets (``yx_patch_size`` and the triplet ones)."""
    return {
        key: data_args[key]
        for key in ("yx_patch_size", "initial_yx_patch_size", "final_yx_patch_size")
        if data_args.get(key) is not None
    }


def _check_data_section(ctx: CheckContext) -> None:
    args = ctx.data_args
    report = ctx.report
    if "data_path" not in args:
        return
    where = "data.init_args"
    plate = ctx.plate(args["data_path"], f"{where}.data_path")
    initial = args.get("initial_yx_patch_size") or args.get("yx_patch_size")
    final = args.get("final_yx_patch_size")
    if (
        initial is not None
        and final is not None
        and any(int(f) > int(i) for f, i in zip(final, initial, strict=False))
    ):
        report.error(
            "final patch larger than the read patch",
            where,
            f"final_yx_patch_size={list(final)} > {list(initial)}",
            "make final_yx_patch_size <= the initial / yx patch size",
        )
    if plate is None:
        return
    channels = [str(c) for c in _as_list(args.get("source_channel"))]
    channels += [str(c) for c in _as_list(args.get("target_channel"))]
    z_range = args.get("z_range")
    z_window = args.get("z_window_size") if z_range is None else None
    check_plate_inputs(
        report,
        where,
        plate,
        channels,
        z_range=z_range,
        z_window=z_window,
        patch_sizes=config_patch_sizes(args),
        normalizations=config_normalizations(args),
        tracks_path=args.get("tracks_path"),
    )


def _find_key(node: Any, key: str) -> Any:
    if isinstance(node, Mapping):
        if key in node:
            return node[key]
        for value in node.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def _data_depth(args: Mapping[str, Any]) -> int | None:
    z_range = args.get("z_range")
    if z_range is not None and len(z_range) == 2:
        return int(z_range[1]) - int(z_range[0])
    window = args.get("z_window_size")
    return None if window is None else int(window)


def check_model_against_data(ctx: CheckContext, n_channels: int | None = None) -> None:
    """The model's input channels and depth against the data's channels and Z window."""
    model = ctx.model_args
    data = ctx.data_args
    if n_channels is None and data.get("source_channel") is not None:
        n_channels = len(_as_list(data.get("source_channel")))
    in_channels = _find_key(model, "in_channels")
    if n_channels is not None and isinstance(in_channels, int) and in_channels != n_channels:
        ctx.report.error(
            "model input channels do not match the data",
            "model.init_args ... in_channels",
            f"in_channels={in_channels}",
            f"set it to {n_channels} (the number of source channels)",
        )
    depth = _data_depth(data)
    stack = _find_key(model, "in_stack_depth")
    if depth is not None and isinstance(stack, int) and stack != depth:
        ctx.report.error(
            "model stack depth does not match the data",
            "model.init_args ... in_stack_depth",
            f"in_stack_depth={stack}",
            f"set it to {depth} (the z_range / z_window_size length)",
        )


def _check_trainer(ctx: CheckContext) -> None:
    trainer = dict(ctx.config.get("trainer") or {})
    devices = trainer.get("devices", "auto")
    accelerator = str(trainer.get("accelerator", "auto"))
    strategy = str(trainer.get("strategy", "auto"))
    gpus = _cuda_count()
    wants_gpu = accelerator in ("gpu", "cuda")
    if wants_gpu and gpus == 0:
        ctx.report.warn(
            "no GPU on this machine",
            "trainer.accelerator",
            f"accelerator={accelerator!r}",
            "fine on a login node; on the compute node this must see a GPU",
        )
    requested = _as_list(devices) if isinstance(devices, list) else devices
    n = len(requested) if isinstance(requested, list) else requested
    if isinstance(n, int) and n > 0:
        available = gpus if (wants_gpu or (accelerator == "auto" and gpus)) else os.cpu_count()
        if available is not None and n > max(available, 1):
            ctx.report.warn(
                "more devices than this machine has",
                "trainer.devices",
                f"devices={devices!r}",
                f"this machine has {available}; set devices to match the node you run on",
            )
        if n == 1 and "ddp" in strategy:
            ctx.report.warn(
                "DDP on one device",
                "trainer.strategy",
                f"strategy={strategy!r}",
                "use strategy 'auto' for one device, or more devices",
            )


def _cuda_count() -> int:
    if "torch" not in sys.modules:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            return len([d for d in visible.split(",") if d.strip()])
        return len(list(Path("/dev").glob("nvidia[0-9]*")))
    import torch

    return torch.cuda.device_count()


def _instantiate(ctx: CheckContext) -> None:
    """Build data and model as ``fit`` does, run ``setup(stage)``, check the splits."""
    report = ctx.report
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule, LightningModule

    instantiated: dict[str, Any] = {}
    for section, base in (("data", LightningDataModule), ("model", LightningModule)):
        if section not in ctx.config:
            continue
        parser = ArgumentParser(exit_on_error=False)
        parser.add_argument(f"--{section}", type=base)
        try:
            namespace = parser.parse_object({section: ctx.config[section]})
            instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
            instantiated[section] = getattr(instantiate(namespace), section)
        except Exception as err:
            report.error(
                f"{section} cannot be built",
                f"{section}.class_path {ctx.config[section].get('class_path')!r}",
                f"{type(err).__name__}: {err}",
                f"fix the '{section}' section",
            )
    data = instantiated.get("data")
    if data is None:
        return
    try:
        data.setup(ctx.stage)
    except Exception as err:
        report.error(
            f"setup('{ctx.stage}') failed",
            type(data).__name__,
            f"{type(err).__name__}: {err}",
            "fix the data section or the files it names",
        )
        return
    report.checked.append(f"{type(data).__name__}.setup('{ctx.stage}')")
    splits = {"fit": ("train_dataset", "val_dataset"), "validate": ("val_dataset",)}.get(
        ctx.stage, (f"{ctx.stage}_dataset",)
    )
    for attr in splits:
        dataset = getattr(data, attr, None)
        if attr == "val_dataset" and dataset is None and ctx.stage == "fit":
            report.warn(
                "no validation set",
                type(data).__name__,
                "val_dataset=None",
                "give some FOVs to validation (split_ratio < 1) to monitor overfitting",
            )
            continue
        try:
            size = len(dataset) if dataset is not None else 0
        except TypeError:
            continue
        if size == 0:
            report.error(
                f"empty {attr.replace('_dataset', '')} split",
                type(data).__name__,
                f"len({attr})=0",
                "include more wells / FOVs, or check the tracks and the split settings",
            )


def _read_chunks(ctx: CheckContext, read: int | Literal["all"]) -> None:
    from viscy_utils._check_read import read_chunks

    for plate in ctx.plates.values():
        if plate is not None:
            read_chunks(plate, read, ctx.report)
    ctx.report.checked.append(f"chunk reads ({read} per FOV)")


def check_config(
    config: Mapping[str, Any],
    stage: str = "fit",
    read: int | Literal["all"] | None = None,
    setup: bool = True,
    extra_checks: Sequence[ExtraCheck] = (),
) -> CheckReport:
    """Run every check on a composed Lightning CLI config and return the report.

    Parameters
    ----------
    config : Mapping
        The config as ``fit`` reads it (``trainer``, ``model``, ``data`` sections).
    stage : str
        Stage whose setup-time validation runs (``fit``, ``validate``, ``predict``).
    read : int | "all" | None
        Decode this many random chunks per FOV (``"all"``: every chunk); None: no pixel reads.
    setup : bool
        Instantiate data and model and run ``setup(stage)`` when the static checks pass.
    extra_checks : Sequence[Callable[[CheckContext], None]]
        Application checks (e.g. an experiments registry), run after the built-in ones.
    """
    start = time.perf_counter()
    report = CheckReport()
    ctx = CheckContext(dict(config), stage, report)
    for name, check in (
        ("data", _check_data_section),
        ("model/data match", check_model_against_data),
        ("trainer", _check_trainer),
        *((getattr(c, "__name__", "extra"), c) for c in extra_checks),
    ):
        try:
            check(ctx)
        except Exception as err:  # a check must never hide the others
            report.error(
                f"check '{name}' could not run", name, f"{type(err).__name__}: {err}", "see above"
            )
        report.checked.append(name)
    if setup and report.ok:
        _instantiate(ctx)
    elif setup:
        report.checked.append("setup skipped (static errors)")
    if read is not None:
        _read_chunks(ctx, read)
    report.seconds = time.perf_counter() - start
    return report


def _read_arg(text: str) -> int | Literal["all"]:
    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--read takes a number or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--read must be >= 1, got {value}")
    return value


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{prog} check",
        description="Validate a config (the one `fit` takes) and its data before the run starts.",
    )
    parser.add_argument("-c", "--config", required=True, action="append", help="YAML config")
    parser.add_argument("--stage", default="fit", choices=("fit", "validate", "test", "predict"))
    parser.add_argument(
        "--read",
        type=_read_arg,
        default=None,
        metavar="N|all",
        help="decode N random chunks per FOV ('all': every chunk) to find damaged data",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--no-setup", action="store_true", help="static checks only (no instantiation)"
    )
    return parser


def check_main(
    argv: Sequence[str] | None = None,
    prog: str = "viscy",
    extra_checks: Sequence[ExtraCheck] = (),
) -> int:
    """``<prog> check -c CONFIG.yml [--read N|all] [--json]``; returns the exit status."""
    from viscy_utils.cli_utils import load_config, merge_configs

    args = _parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        config: dict[str, Any] = {}
        for path in args.config:
            config = merge_configs(config, load_config(path))
    except (OSError, ValueError) as err:
        print(f"ERROR: cannot read the config: {err}", file=sys.stderr)
        return 2
    report = check_config(
        config,
        stage=args.stage,
        read=args.read,
        setup=not args.no_setup,
        extra_checks=extra_checks,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems:
            print(problem.line())
        print(report.summary())
    return 0 if report.ok else 1
