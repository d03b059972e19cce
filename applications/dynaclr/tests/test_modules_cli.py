"""ClassificationModule, MultiModalContrastiveModule, pseudo-tracks, generate-fit-config and
ONNX export through the ``dynaclr`` command, with the example configs, on a plate in the
demo's layout.

Every command runs in ONE subprocess (one import of torch and Lightning), step by step;
each test checks its step's exit status and outputs. The example configs' ConvNeXt encoders
are swapped for ``TinyEncoder`` on the command line to keep the run short.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "configs"

_TINY = {"width": 8, "embedding_dim": 16, "projection_dim": 8}


def _tiny(in_channels: int) -> str:
    return json.dumps(
        {
            "class_path": "dynaclr.tiny_encoder.TinyEncoder",
            "init_args": {"in_channels": in_channels, **_TINY},
        }
    )


_RUNNER = r"""
import json, sys, traceback
import torch
from dynaclr.cli import main
from dynaclr.tiny_encoder import TinyEncoder

tiny = json.loads(sys.argv[2])
for channels in (1, 2):
    torch.manual_seed(channels)
    encoder = TinyEncoder(in_channels=channels, **tiny)
    state = {"model." + k: v for k, v in encoder.state_dict().items()}
    torch.save({"state_dict": state}, f"pretrained_{channels}ch.ckpt")
results = {}
for name, argv in json.load(open(sys.argv[1])):
    try:
        results[name] = {"rc": main(argv)}
    except BaseException as err:  # keep going: every step reports on its own
        results[name] = {"rc": -1, "error": traceback.format_exc()}
    print(f"STEP {name}: {results[name]['rc']}", flush=True)
json.dump(results, open("results.json", "w"))
"""


@pytest.fixture(scope="module")
def cli_run(demo_plate, two_experiments):
    """Run every command of this file once, in one subprocess; return (root, results)."""
    root, _ = demo_plate
    exp_root, _ = two_experiments
    for name in (
        "classification_fit.yml",
        "classification_predict.yml",
        "multi_modal_fit.yml",
        "multi_modal_predict.yml",
        "fit.yml",
        "export_onnx.yml",
        "multi_experiment_predict.yml",
    ):
        shutil.copy(EXAMPLES / name, root / name)
    (root / "multiexp_demo").symlink_to(exp_root)  # where the multi-experiment examples look
    cpu = ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
    workers = ["--data.init_args.num_workers", "0"]
    fast = ["--trainer.fast_dev_run", "true", *workers, "--data.init_args.batch_size", "4", *cpu]
    predict = ["--ckpt_path", "null", *workers, *cpu]
    one, two = _tiny(1), _tiny(2)
    generated = str(root / "generated_fit.yml")
    steps = [
        (
            "classification_fit",
            ["fit", "-c", "classification_fit.yml", *fast, "--model.init_args.encoder", one,
             "--model.init_args.encoder_ckpt_path", "pretrained_1ch.ckpt",
             "--model.init_args.freeze_encoder", "true"],
        ),
        (
            "classification_predict",
            ["predict", "-c", "classification_predict.yml", *predict,
             "--model.init_args.encoder", one],
        ),
        (
            "multi_modal_fit",
            ["fit", "-c", "multi_modal_fit.yml", *fast,
             "--model.init_args.source_encoder", one, "--model.init_args.target_encoder", one,
             "--model.init_args.target_ckpt_path", "pretrained_1ch.ckpt",
             "--model.init_args.freeze", "target"],
        ),
        (
            "multi_modal_predict",
            ["predict", "-c", "multi_modal_predict.yml", *predict,
             "--model.init_args.source_encoder", one, "--model.init_args.target_encoder", one],
        ),
        (
            "pseudo_tracks",
            ["pseudo-tracks", "--data-path", "demo_output/plate.zarr", "--labels", "fg_mask",
             "--out", "demo_output/pseudo_tracks", "--no-progress"],
        ),
        (
            "pseudo_tracks_fit",
            ["fit", "-c", "fit.yml", *fast, "--model.init_args.encoder", two,
             "--data.init_args.tracks_path", "demo_output/pseudo_tracks",
             "--data.init_args.time_interval", "any"],
        ),
        (
            "export",
            ["export", "-c", "export_onnx.yml", "--model.init_args.encoder", two,
             "--ckpt_path", "pretrained_2ch.ckpt", "--export_path", "encoder.onnx"],
        ),
        (
            "generate_fit_config",
            ["generate-fit-config", "--experiments", str(exp_root / "experiments.yml"),
             "--recipe", "tiny", "--out", generated],
        ),
        ("generated_print_config", ["fit", "-c", generated, "--print_config"]),
        ("generated_fit", ["fit", "-c", generated, *fast]),
        (
            "multi_experiment_predict",
            ["predict", "-c", "multi_experiment_predict.yml", *predict,
             "--model.init_args.encoder", two],
        ),
        (
            "multi_experiment_predict_alone",
            ["predict", "-c", "multi_experiment_predict.yml", *predict,
             "--model.init_args.encoder", two,
             "--data.init_args.predict_experiments", "[exp_a]",
             "--trainer.callbacks", json.dumps([{
                 "class_path": "viscy_utils.callbacks.embedding_writer.EmbeddingWriter",
                 "init_args": {"output_path": "multiexp_demo/embeddings_exp_a.zarr"}}])],
        ),
    ]  # fmt: skip
    (root / "steps.json").write_text(json.dumps(steps))
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, "steps.json", json.dumps(_TINY)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    results_file = root / "results.json"
    assert results_file.exists(), proc.stdout[-3000:] + proc.stderr[-5000:]
    results = json.loads(results_file.read_text())
    for result in results.values():
        result["log"] = proc.stdout[-4000:] + proc.stderr[-6000:]
    return root, results


def _ok(results: dict, name: str) -> None:
    result = results[name]
    assert result["rc"] == 0, result.get("error") or result["log"]


def test_classification_fit_and_predict(cli_run, demo_plate):
    root, results = cli_run
    _ok(results, "classification_fit")
    _ok(results, "classification_predict")
    _, plate = demo_plate
    adata = anndata.read_zarr(root / "demo_output" / "classification" / "predictions.zarr")
    # every annotated cell once, keyed like the embeddings
    assert adata.n_obs == len(plate.cells)
    assert adata.X.shape == (len(plate.cells), 2)
    np.testing.assert_allclose(adata.X.sum(axis=1), 1.0, atol=1e-5)
    got = adata.obs[["fov_name", "track_id", "t"]].astype(
        {"fov_name": str, "track_id": int, "t": int}
    )
    want = plate.cells[["fov_name", "track_id", "t"]].astype({"fov_name": str})
    pd.testing.assert_frame_equal(
        got.sort_values(list(got.columns)).reset_index(drop=True),
        want.sort_values(list(want.columns)).reset_index(drop=True),
        check_dtype=False,
    )
    np.testing.assert_array_equal(adata.obs["predicted_class"], adata.X.argmax(axis=1))
    assert set(adata.obs["predicted_label"]) <= {"uninfected", "infected"}
    assert adata.obsm["X_features"].shape == (len(plate.cells), _TINY["embedding_dim"])


def test_multi_modal_fit_and_predict(cli_run, demo_plate):
    root, results = cli_run
    _ok(results, "multi_modal_fit")
    _ok(results, "multi_modal_predict")
    _, plate = demo_plate
    adata = anndata.read_zarr(root / "demo_output" / "multi_modal" / "embeddings.zarr")
    n = len(plate.cells)
    assert adata.n_obs == n
    keys = set(adata.obs[["fov_name", "track_id", "t"]].astype(str).agg("/".join, axis=1))
    want = set(plate.cells[["fov_name", "track_id", "t"]].astype(str).agg("/".join, axis=1))
    assert keys == want
    for modality in ("label_free", "fluorescence"):
        assert adata.obsm[f"X_{modality}"].shape == (n, _TINY["embedding_dim"])
        assert adata.obsm[f"X_{modality}_projections"].shape == (n, _TINY["projection_dim"])
    np.testing.assert_array_equal(adata.X, adata.obsm["X_label_free"])
    # two different encoders on two different channels: the embeddings differ
    assert not np.allclose(adata.obsm["X_label_free"], adata.obsm["X_fluorescence"])


def test_pseudo_tracks_train(cli_run, demo_plate):
    root, results = cli_run
    _ok(results, "pseudo_tracks")
    _, plate = demo_plate
    tracks = root / "demo_output" / "pseudo_tracks"
    csvs = sorted(tracks.glob("*/*/*/tracks.csv"))
    assert len(csvs) == len(plate.fov_names)
    table = pd.concat([pd.read_csv(c) for c in csvs])
    assert list(table.columns) == ["track_id", "t", "id", "parent_track_id", "parent_id"] + [
        "z",
        "y",
        "x",
    ]
    assert (table["parent_track_id"] == -1).all()
    first = pd.read_csv(csvs[0])
    assert first["track_id"].is_unique  # one pseudo-track per object per timepoint
    assert len(table) > len(plate.fov_names)  # objects were found
    _ok(results, "pseudo_tracks_fit")


def test_onnx_export_matches_torch(cli_run):
    ort = pytest.importorskip("onnxruntime")
    import torch

    from dynaclr import TinyEncoder, load_encoder_weights

    root, results = cli_run
    _ok(results, "export")
    encoder = load_encoder_weights(
        TinyEncoder(in_channels=2, **_TINY), root / "pretrained_2ch.ckpt"
    ).eval()
    session = ort.InferenceSession(str(root / "encoder.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 2, 1, 32, 32)).astype(np.float32)
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        features, projections = encoder(torch.from_numpy(x))
    assert [o.name for o in session.get_outputs()] == ["features", "projections"]
    np.testing.assert_allclose(onnx_out[0], features.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_out[1], projections.numpy(), atol=1e-4, rtol=0)


def test_generated_fit_config_runs(cli_run, two_experiments):
    import yaml

    root, results = cli_run
    _ok(results, "generate_fit_config")
    config = yaml.safe_load((root / "generated_fit.yml").read_text())
    encoder = config["model"]["init_args"]["encoder"]["init_args"]
    assert encoder["in_channels"] == 2  # the channels both experiments share
    data = config["data"]["init_args"]
    assert data["val_experiments"] == ["exp_b"]
    assert data["normalizations"][0]["init_args"]["keys"] == ["Phase3D", "GFP"]
    assert data["channel_dropout_channels"] == [1]  # GFP, not the label-free channel
    _ok(results, "generated_print_config")
    _ok(results, "generated_fit")


def test_multi_experiment_predict(cli_run, two_experiments):
    root, results = cli_run
    _ok(results, "multi_experiment_predict")
    _ok(results, "multi_experiment_predict_alone")
    exp_root, plates = two_experiments
    both = anndata.read_zarr(exp_root / "embeddings.zarr")
    alone = anndata.read_zarr(exp_root / "embeddings_exp_a.zarr")
    columns = ["experiment", "condition", "well_name", "fov_name", "track_id", "t"]
    assert set(columns + ["hours_post_infection"]) <= set(both.obs.columns)
    keys = ["experiment", "fov_name", "track_id", "t"]
    got = both.obs[keys].astype(str).agg("/".join, axis=1)
    assert got.is_unique  # each cell-timepoint exactly once
    want = (
        pd.concat(
            [p.cells.assign(experiment=name) for name, p in plates.items()], ignore_index=True
        )[keys]
        .astype(str)
        .agg("/".join, axis=1)
    )
    assert set(got) == set(want) and len(got) == len(want)
    # conditions, wells and hours post infection as the experiments YAML says
    obs = both.obs
    assert (obs["well_name"] == obs["fov_name"].astype(str).str.rsplit("/", n=1).str[0]).all()
    expected_condition = np.where(obs["well_name"] == "A/1", "uninfected", "infected")
    assert (obs["condition"].astype(str) == expected_condition).all()
    start, interval = {"exp_a": (2.0, 30), "exp_b": (4.0, 15)}, obs["experiment"].astype(str)
    hpi = [start[e][0] + t * start[e][1] / 60 for e, t in zip(interval, obs["t"], strict=True)]
    np.testing.assert_allclose(obs["hours_post_infection"].astype(float), hpi)
    # the same cells embedded alone or next to the other experiment: identical embeddings
    assert set(alone.obs["experiment"].astype(str)) == {"exp_a"}
    key_alone = alone.obs[keys].astype(str).agg("/".join, axis=1)
    position = {k: i for i, k in enumerate(got)}
    rows = [position[k] for k in key_alone]
    assert len(rows) == len(plates["exp_a"].cells)
    np.testing.assert_array_equal(alone.X, both.X[rows])
