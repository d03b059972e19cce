"""``dynaclr generate-predict-scripts``: one SLURM job per checkpoint x dataset.

From a registry (``dynaclr discover --out registry.csv``) and a predict config used as
template, writes for every checkpoint and every dataset with tracks

* ``<out>/<model>__<dataset>.yml``: the template with ``data.init_args.data_path`` /
  ``tracks_path``, ``ckpt_path`` and the ``EmbeddingWriter``'s ``output_path``
  (``<predictions>/<model>/<dataset>.zarr``, the layout ``discover`` reads back) set;
* ``<out>/<model>__<dataset>.sh``: an ``sbatch`` script running ``dynaclr predict`` on it
  on one GPU;
* ``<out>/submit_all.sh``: ``sbatch`` of every script.

Pairs that already have predictions are skipped unless ``--all``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dynaclr.study.discover import read_registry

__all__ = ["generate_predict_scripts", "main"]

_WRITER_SUFFIXES = ("EmbeddingWriter",)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "unnamed"


def _set_output(config: dict[str, Any], output: Path, source: str) -> None:
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    if isinstance(callbacks, dict):
        callbacks = [callbacks]
    writers = [
        c
        for c in callbacks
        if isinstance(c, dict) and str(c.get("class_path", "")).endswith(_WRITER_SUFFIXES)
    ]
    if len(writers) != 1:
        raise ValueError(
            f"{source} must have exactly one EmbeddingWriter in trainer.callbacks, found "
            f"{len(writers)}"
        )
    writers[0].setdefault("init_args", {})["output_path"] = str(output)


def _slurm_script(config: Path, log_dir: Path, job: str, options: dict[str, Any]) -> str:
    q = shlex.quote
    lines = [
        "#!/usr/bin/env bash",
        f"# dynaclr predict for {job} (written by dynaclr generate-predict-scripts)",
        f"#SBATCH --job-name=predict-{job}",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gres=gpu:1",
        f"#SBATCH --cpus-per-task={int(options['cpus'])}",
        f"#SBATCH --mem={options['mem']}",
        f"#SBATCH --time={options['time']}",
        f"#SBATCH --output={log_dir}/%x-%j.out",
    ]
    if options.get("partition"):
        lines.append(f"#SBATCH --partition={options['partition']}")
    lines += ["", "set -euo pipefail", "export PYTHONUNBUFFERED=1"]
    if options.get("venv"):
        lines.append(f"source {q(str(Path(options['venv']) / 'bin' / 'activate'))}")
    lines.append(
        f"srun dynaclr predict -c {q(str(config))} --trainer.accelerator gpu --trainer.devices 1"
    )
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    if mode is not None:
        tmp.chmod(mode)
    os.replace(tmp, path)


def generate_predict_scripts(
    registry: pd.DataFrame | str | Path,
    template: str | Path,
    out_dir: str | Path,
    predictions_root: str | Path,
    models: list[str] | None = None,
    datasets: list[str] | None = None,
    include_existing: bool = False,
    partition: str | None = None,
    time: str = "0-04:00:00",
    cpus: int = 8,
    mem: str = "64G",
    venv: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write one predict config and SLURM script per checkpoint x dataset.

    Returns
    -------
    list of Path
        The SLURM scripts written (``submit_all.sh`` not included).
    """
    if not isinstance(registry, pd.DataFrame):
        registry = read_registry(registry)
    template = Path(template)
    if not template.is_file():
        raise FileNotFoundError(f"Predict config template not found: {template}")
    base = yaml.safe_load(template.read_text())
    if not isinstance(base, dict) or "data" not in base or "model" not in base:
        raise ValueError(f"{template} is not a predict config (needs model: and data:)")
    _set_output(base, Path("check.zarr"), str(template))  # fail before writing anything
    out_dir, predictions_root = Path(out_dir).resolve(), Path(predictions_root).resolve()
    ckpts = registry[registry["kind"] == "checkpoint"]
    plates = registry[registry["kind"] == "dataset"]
    tracks = dict(registry.loc[registry["kind"] == "tracks", ["dataset", "path"]].values)
    done = set(
        map(tuple, registry.loc[registry["kind"] == "predictions", ["model", "dataset"]].values)
    )
    if models is not None:
        ckpts = ckpts[ckpts["model"].isin(models)]
    if datasets is not None:
        plates = plates[plates["dataset"].isin(datasets)]
    if ckpts.empty:
        raise ValueError("The registry lists no checkpoint (for the chosen models)")
    if plates.empty:
        raise ValueError("The registry lists no dataset (for the chosen datasets)")
    if ckpts["model"].duplicated().any():
        names = sorted(set(ckpts.loc[ckpts["model"].duplicated(), "model"]))
        raise ValueError(
            f"Model(s) {names} have several checkpoints in the registry; keep one row each"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    log_dir = out_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    options = {"partition": partition, "time": time, "cpus": cpus, "mem": mem, "venv": venv}
    scripts: list[Path] = []
    for _, ckpt in ckpts.iterrows():
        for _, plate in plates.iterrows():
            model, dataset = ckpt["model"], plate["dataset"]
            if (model, dataset) in done and not include_existing:
                continue
            if dataset not in tracks:
                print(f"skipped {dataset}: no tracks root in the registry", file=sys.stderr)
                continue
            job = f"{_safe(model)}__{_safe(dataset)}"
            config_path, script_path = out_dir / f"{job}.yml", out_dir / f"{job}.sh"
            for path in (config_path, script_path):
                if path.exists() and not overwrite:
                    raise FileExistsError(f"{path} exists; pass overwrite (--overwrite)")
            config = yaml.safe_load(template.read_text())
            init = config["data"].setdefault("init_args", {})
            init["data_path"] = plate["path"]
            init["tracks_path"] = tracks[dataset]
            config["ckpt_path"] = ckpt["path"]
            output = predictions_root / _safe(model) / f"{_safe(dataset)}.zarr"
            _set_output(config, output, str(template))
            _write_atomic(config_path, yaml.safe_dump(config, sort_keys=False))
            _write_atomic(script_path, _slurm_script(config_path, log_dir, job, options), 0o755)
            scripts.append(script_path)
    submit = ["#!/usr/bin/env bash", "set -euo pipefail"]
    submit += [f"sbatch {shlex.quote(str(s))}" for s in scripts]
    _write_atomic(out_dir / "submit_all.sh", "\n".join(submit) + "\n", 0o755)
    return scripts


def main(argv: list[str] | None = None) -> int:
    """``dynaclr generate-predict-scripts``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr generate-predict-scripts",
        description=(
            "Write one predict config and one SLURM script per checkpoint x dataset of a "
            "registry (dynaclr discover --out), from a predict config template."
        ),
    )
    parser.add_argument("--registry", required=True, help="registry CSV from dynaclr discover")
    parser.add_argument("--template", required=True, help="predict.yml used as template")
    parser.add_argument("--out-dir", required=True, help="folder for the configs and scripts")
    parser.add_argument(
        "--predictions-root", required=True, help="embeddings go to <root>/<model>/<dataset>.zarr"
    )
    parser.add_argument("--models", nargs="+", help="only these models")
    parser.add_argument("--datasets", nargs="+", help="only these datasets")
    parser.add_argument(
        "--all", action="store_true", help="also pairs that already have predictions"
    )
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument("--time", default="0-04:00:00", help="SLURM time limit")
    parser.add_argument("--cpus", type=int, default=8, help="CPUs per task")
    parser.add_argument("--mem", default="64G", help="memory per node")
    parser.add_argument("--venv", help="virtual environment to activate in the job")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    try:
        scripts = generate_predict_scripts(
            args.registry,
            args.template,
            args.out_dir,
            args.predictions_root,
            models=args.models,
            datasets=args.datasets,
            include_existing=args.all,
            partition=args.partition,
            time=args.time,
            cpus=args.cpus,
            mem=args.mem,
            venv=args.venv,
            overwrite=args.overwrite,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"dynaclr generate-predict-scripts: error: {err}", file=sys.stderr)
        return 1
    print(f"Wrote {len(scripts)} SLURM scripts to {args.out_dir} (submit: submit_all.sh)")
    return 0
