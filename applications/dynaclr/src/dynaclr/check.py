"""``dynaclr check -c fit.yml``: validate a DynaCLR config and its data before a run.

The checks of ``viscy check`` (:mod:`viscy_utils.check`) plus DynaCLR's experiments registry:
for a :class:`~dynaclr.datamodule.MultiExperimentDataModule` config, every experiment's plate,
channels, condition wells and tracks are checked against the shared z-range and patch sizes,
and the model's input channels against the registry's training channels.
"""

from __future__ import annotations

from collections.abc import Sequence

from viscy_utils.check import (
    CheckContext,
    check_main,
    check_model_against_data,
    check_plate_inputs,
)

__all__ = ["check_experiments", "main"]


def check_experiments(ctx: CheckContext) -> None:
    """Check the experiments registry a multi-experiment config names."""
    from dynaclr.experiment import ExperimentRegistry
    from viscy_utils.check import config_normalizations, config_patch_sizes

    args = ctx.data_args
    yaml_path = args.get("experiments_yaml")
    if yaml_path is None:
        return
    report = ctx.report
    where = "data.init_args.experiments_yaml"
    try:
        registry = ExperimentRegistry.from_yaml(yaml_path, check_paths=False)
    except (OSError, ValueError) as err:
        report.error(
            "bad experiments registry",
            where,
            f"experiments_yaml={str(yaml_path)!r}: {err}",
            "fix the registry YAML",
        )
        return
    unknown = [n for n in args.get("val_experiments") or () if n not in registry.names]
    if unknown:
        report.error(
            "unknown validation experiment",
            "data.init_args.val_experiments",
            f"val_experiments={unknown}",
            f"use names from the registry: {registry.names}",
        )
    for exp in registry:
        exp_where = f"experiment {exp.name!r}"
        plate = ctx.plate(exp.data_path, exp_where)
        if plate is None:
            continue
        wells = {fov.rsplit("/", 1)[0] for fov in plate.fovs}
        absent = [w for w in exp.well_conditions if w not in wells]
        if absent:
            report.error(
                "condition well not in the plate",
                f"{exp_where}: {plate.path}",
                f"wells={absent}",
                f"use wells of the plate: {sorted(wells)}",
            )
        fovs = [f for f in plate.fovs if f.rsplit("/", 1)[0] in exp.well_conditions]
        check_plate_inputs(
            report,
            exp_where,
            plate,
            exp.channel_names,
            z_range=args.get("z_range"),
            patch_sizes=config_patch_sizes(args),
            normalizations=config_normalizations(args),
            tracks_path=exp.tracks_path,
            fovs=fovs,
        )
    check_model_against_data(ctx, n_channels=len(registry.active_channels))


def main(argv: Sequence[str] | None = None) -> int:
    """``dynaclr check -c fit.yml [--read N|all] [--json]``."""
    return check_main(argv, prog="dynaclr", extra_checks=[check_experiments])
