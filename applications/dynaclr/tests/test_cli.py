"""The ``dynaclr`` command: lazy dispatch and the evaluation subcommands."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

from dynaclr.cli import COMMANDS, main


def test_help_is_fast_and_imports_no_torch():
    code = (
        "import sys, time; t = time.perf_counter(); from dynaclr.cli import main; "
        "rc = main(['--help']); "
        "heavy = [m for m in ('torch', 'lightning', 'monai', 'viscy_utils.cli') "
        "if m in sys.modules]; "
        "print('HEAVY', heavy, 'RC', rc, 'T', time.perf_counter() - t)"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    wall = time.perf_counter() - start
    assert "HEAVY [] RC 0" in proc.stdout
    for name in COMMANDS:
        assert name in proc.stdout
    assert wall < 3.0, f"dynaclr --help took {wall:.2f} s"


def test_console_script_help():
    # installed with the package, beside this interpreter
    exe = shutil.which("dynaclr", path=str(Path(sys.executable).parent))
    assert exe is not None, f"no dynaclr console script in {Path(sys.executable).parent}"
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "train-linear-classifier" in proc.stdout


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_commands_resolve_to_callables():
    import importlib

    for name, command in COMMANDS.items():
        module_name, func_name = command.target.split(":")
        assert callable(getattr(importlib.import_module(module_name), func_name)), name


def test_subcommand_help_reaches_its_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train-linear-classifier", "--help"])
    assert exc.value.code == 0
    assert "--label-column" in capsys.readouterr().out


@pytest.fixture
def embeddings_zarr(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    fovs = [f"{well}/{i}" for well in ("A/1", "B/1") for i in range(4)]
    for fov in fovs:
        for track in range(6):
            for t in range(3):
                rows.append({"fov_name": fov, "track_id": track, "t": t, "id": track * 10 + t})
    obs = pd.DataFrame(rows)
    infected = obs["fov_name"].str.startswith("B")
    x = rng.normal(size=(len(obs), 8)).astype(np.float32)
    x[infected.to_numpy(), 0] += 4.0  # linearly separable along the first axis
    adata = anndata.AnnData(X=x, obs=obs.astype({"fov_name": str}))
    adata.obs_names = [str(i) for i in range(len(obs))]
    path = tmp_path / "embeddings.zarr"
    adata.write_zarr(path)
    annotations = obs[["fov_name", "track_id", "t"]].copy()
    annotations["fov_name"] = "/" + annotations["fov_name"]  # leading slash is tolerated
    annotations["infection_state"] = np.where(infected, "infected", "uninfected")
    ann_path = tmp_path / "annotations.csv"
    annotations.to_csv(ann_path, index=False)
    return path, ann_path


def test_train_and_apply_linear_classifier(tmp_path, embeddings_zarr, capsys):
    emb, ann = embeddings_zarr
    model = tmp_path / "probe.pkl"
    rc = main(
        [
            "train-linear-classifier",
            "--embeddings",
            str(emb),
            "--annotations",
            str(ann),
            "--label-column",
            "infection_state",
            "--test-size",
            "0.5",
            "--out",
            str(model),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("accuracy:")[1].split()[0])
    assert accuracy > 0.9
    assert model.exists()

    predictions = tmp_path / "pred.csv"
    rc = main(
        [
            "apply-linear-classifier",
            "--embeddings",
            str(emb),
            "--model",
            str(model),
            "--out",
            str(predictions),
        ]
    )
    assert rc == 0
    df = pd.read_csv(predictions)
    expected = np.where(df["fov_name"].str.startswith("B"), "infected", "uninfected")
    assert np.mean(df["predicted_infection_state"] == expected) > 0.9
    assert {"probability_infected", "probability_uninfected"} <= set(df.columns)


def test_train_linear_classifier_missing_label_column(embeddings_zarr):
    from dynaclr.evaluation import load_embeddings_with_labels

    emb, ann = embeddings_zarr
    with pytest.raises(KeyError, match="cell_state"):
        load_embeddings_with_labels(emb, "cell_state", ann)
    with pytest.raises(KeyError, match="obs"):
        load_embeddings_with_labels(emb, "infection_state")


def test_lazy_exports_resolve():
    import dynaclr

    for name, module_name in dynaclr._EXPORTS.items():
        assert getattr(dynaclr, name) is getattr(importlib.import_module(module_name), name)
    assert "ContrastiveModule" in dir(dynaclr)
    with pytest.raises(AttributeError, match="no attribute"):
        dynaclr.DoesNotExist  # noqa: B018
