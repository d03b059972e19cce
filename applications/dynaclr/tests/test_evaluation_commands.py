"""The evaluation commands on real AnnData zarr stores of a synthetic plate's cells:
reduce, annotate, append-predictions, split, info, plot, evaluate."""

from __future__ import annotations

import importlib.util
import json

import anndata
import numpy as np
import pandas as pd
import pytest

from dynaclr.cli import COMMANDS
from dynaclr.cli import main as dynaclr
from dynaclr.evaluation.evaluate import grouped_probe

EVAL_COMMANDS = (
    "reduce",
    "annotate",
    "append-predictions",
    "split",
    "info",
    "plot",
    "evaluate",
    "explore",
)


@pytest.mark.parametrize("name", EVAL_COMMANDS)
def test_every_command_has_help(name, capsys):
    assert name in COMMANDS
    with pytest.raises(SystemExit) as exit_info:
        dynaclr([name, "--help"])
    assert exit_info.value.code == 0
    assert f"dynaclr {name}" in capsys.readouterr().out


def test_reduce_jointly_keeps_what_is_there(study_copy):
    before = anndata.read_zarr(study_copy.signal)
    assert (
        dynaclr(["reduce", str(study_copy.signal), str(study_copy.noise), "--n-components", "3"])
        == 0
    )
    a, b = anndata.read_zarr(study_copy.signal), anndata.read_zarr(study_copy.noise)
    assert a.obsm["X_pca"].shape == (a.n_obs, 3)
    assert b.obsm["X_pca"].shape == (b.n_obs, 3)
    np.testing.assert_array_equal(np.asarray(a.X), np.asarray(before.X))
    assert list(a.obs.columns) == list(before.obs.columns)
    assert list(a.uns["pca"]["joint_with"]) == [str(study_copy.signal), str(study_copy.noise)]
    # joint: one PCA over both stores, so the coordinates are centred over the union only
    union = np.concatenate([a.obsm["X_pca"], b.obsm["X_pca"]])
    np.testing.assert_allclose(union.mean(axis=0), 0.0, atol=1e-4)
    assert abs(float(a.obsm["X_pca"][:, 0].mean())) > 1e-3
    assert not list(study_copy.signal.parent.glob(".signal.zarr.*"))  # no temporaries left


def test_reduce_names_the_extra_of_a_missing_method(study_copy):
    if importlib.util.find_spec("phate") is not None:
        pytest.skip("phate is installed")
    with pytest.raises(ImportError, match=r"dynaclr\[phate\]"):
        dynaclr(["reduce", str(study_copy.signal), "--method", "phate"])
    assert "X_phate" not in anndata.read_zarr(study_copy.signal).obsm


def test_annotate_reports_unmatched_rows(study_copy, tmp_path, capsys):
    table = pd.read_csv(study_copy.annotations)
    table["fov_name"] = "/" + table["fov_name"]  # leading slashes still match
    extra = pd.DataFrame(
        [
            {
                "fov_name": "Z/9/9",
                "track_id": 1,
                "t": 0,
                "infection_state": "infected",
                "condition": "infected",
            }
        ]
    )
    path = tmp_path / "ann.csv"
    pd.concat([table.iloc[5:], extra]).to_csv(path, index=False)
    assert dynaclr(["annotate", str(study_copy.signal), str(path)]) == 0
    out = capsys.readouterr().out
    n = len(table)
    assert f"matched {n - 5}/{n} cells" in out
    assert "1/" in out and "Z/9/9" in out
    obs = anndata.read_zarr(study_copy.signal).obs.reset_index(drop=True)
    assert obs["infection_state"].isna().sum() == 5
    expected = study_copy.cells["infection_state"].to_numpy()[5:]
    assert (obs["infection_state"].to_numpy()[5:] == expected).all()
    assert dynaclr(["annotate", str(study_copy.signal), str(path), "--strict"]) == 1


def test_annotate_rejects_duplicate_and_keyless_tables(study_copy, tmp_path):
    table = pd.read_csv(study_copy.annotations)
    dup = tmp_path / "dup.csv"
    pd.concat([table, table.iloc[:1]]).to_csv(dup, index=False)
    with pytest.raises(ValueError, match="duplicate"):
        dynaclr(["annotate", str(study_copy.signal), str(dup)])
    keyless = tmp_path / "keyless.csv"
    table[["infection_state"]].to_csv(keyless, index=False)
    with pytest.raises(KeyError, match="fov_name"):
        dynaclr(["annotate", str(study_copy.signal), str(keyless)])


def test_append_predictions_from_a_trained_probe(study_copy, tmp_path):
    dynaclr(["annotate", str(study_copy.signal), str(study_copy.annotations)])
    probe = tmp_path / "probe.pkl"
    predictions = tmp_path / "pred.csv"
    assert (
        dynaclr(
            [
                "train-linear-classifier",
                "--embeddings",
                str(study_copy.signal),
                "--label-column",
                "infection_state",
                "--out",
                str(probe),
            ]
        )
        == 0
    )
    assert (
        dynaclr(
            [
                "apply-linear-classifier",
                "--embeddings",
                str(study_copy.signal),
                "--model",
                str(probe),
                "--out",
                str(predictions),
            ]
        )
        == 0
    )
    assert (
        dynaclr(
            ["append-predictions", str(study_copy.noise), str(predictions), "--prefix", "signal_"]
        )
        == 0
    )
    obs = anndata.read_zarr(study_copy.noise).obs
    assert "signal_predicted_infection_state" in obs.columns
    assert "signal_probability_infected" in obs.columns
    agree = (
        obs["signal_predicted_infection_state"].astype(str).to_numpy()
        == study_copy.cells["infection_state"].to_numpy()
    )
    assert agree.mean() > 0.85


def test_split_by_well_and_info(study_copy, tmp_path, capsys):
    assert dynaclr(["split", str(study_copy.signal), "--out", str(tmp_path / "parts")]) == 0
    parts = sorted((tmp_path / "parts").glob("*.zarr"))
    assert [p.name for p in parts] == ["A_1.zarr", "B_1.zarr"]
    sizes = [anndata.read_zarr(p).n_obs for p in parts]
    assert sum(sizes) == len(study_copy.cells)
    a1 = anndata.read_zarr(parts[0]).obs
    assert set(a1["fov_name"].astype(str).str.rsplit("/", n=1).str[0]) == {"A/1"}
    with pytest.raises(FileExistsError):
        dynaclr(["split", str(study_copy.signal), "--out", str(tmp_path / "parts")])
    capsys.readouterr()
    assert dynaclr(["info", str(parts[0]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_cells"] == sizes[0]
    assert info["n_features"] == 8
    assert "track_id" in info["obs"]
    assert info["provenance"] == {}  # written by the writer function, not by `predict`


def test_grouped_probe_never_scores_on_a_seen_group():
    """Each group's embeddings are unique and its label random: a split that leaked groups
    would memorise them (accuracy ~1); leave-one-group-out stays at chance."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(12), 20)
    labels = np.where(rng.random(12) < 0.5, "a", "b")[groups]
    x = np.eye(12)[groups] * 5 + rng.normal(scale=0.1, size=(len(groups), 12))
    result = grouped_probe(x, labels, groups.astype(str))
    assert result.n_folds + result.skipped_folds == 10  # GroupKFold, 12 groups > 10
    assert result.accuracy < 0.75
    from sklearn.model_selection import cross_val_score

    from viscy_utils.evaluation import build_linear_classifier

    leaky = cross_val_score(build_linear_classifier(), x, labels, cv=5).mean()
    assert leaky > 0.95  # the same data with a leaky split looks perfect


def test_evaluate_compares_models_and_writes_report(study_copy, tmp_path, capsys):
    for path in (study_copy.signal, study_copy.noise):
        dynaclr(["annotate", str(path), str(study_copy.annotations)])
    out = tmp_path / "eval"
    assert (
        dynaclr(
            [
                "evaluate",
                str(study_copy.signal),
                str(study_copy.noise),
                "--label",
                "infection_state",
                "--condition",
                "condition",
                "--out",
                str(out),
                "--permutations",
                "50",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    signal, noise = metrics["models"]["signal"], metrics["models"]["noise"]
    assert signal["probe"]["infection_state"]["accuracy"] > 0.85
    assert noise["probe"]["infection_state"]["accuracy"] < 0.75
    assert signal["probe"]["infection_state"]["n_groups"] == 6  # leave-one-FOV-out
    assert signal["knn"]["infection_state"] > noise["knn"]["infection_state"]
    assert signal["temporal_smoothness"]["ratio"] < 0.8 < noise["temporal_smoothness"]["ratio"]
    assert signal["mmd"]["infected vs uninfected"]["p_value"] < 0.05
    assert noise["mmd"]["infected vs uninfected"]["p_value"] > 0.05
    report = (out / "report.md").read_text()
    assert "| signal |" in report and "| noise |" in report
    for name in (
        "confusion_signal_infection_state",
        "confusion_noise_infection_state",
        "smoothness",
    ):
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{name}.png" in report


def test_evaluate_rejects_a_grouping_that_splits_tracks(study_copy, tmp_path):
    dynaclr(["annotate", str(study_copy.signal), str(study_copy.annotations)])
    with pytest.raises(ValueError, match="one track in several groups"):
        dynaclr(
            [
                "evaluate",
                str(study_copy.signal),
                "--label",
                "infection_state",
                "--group-by",
                "t",
                "--out",
                str(tmp_path / "e"),
            ]
        )
    with pytest.raises(KeyError, match="dynaclr annotate"):
        dynaclr(
            ["evaluate", str(study_copy.signal), "--label", "nope", "--out", str(tmp_path / "e")]
        )


def test_plot_scatter_and_gallery(study_copy, tmp_path):
    dynaclr(["annotate", str(study_copy.signal), str(study_copy.annotations)])
    dynaclr(["reduce", str(study_copy.signal)])
    figs = tmp_path / "figs"
    assert (
        dynaclr(
            [
                "plot",
                "scatter",
                str(study_copy.signal),
                "--color-by",
                "infection_state",
                "--color-by",
                "t",
                "--out",
                str(figs),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in figs.glob("*.png")) == [
        "signal_X_pca_infection_state.png",
        "signal_X_pca_t.png",
    ]
    gallery = figs / "gallery.png"
    assert (
        dynaclr(
            [
                "plot",
                "gallery",
                str(study_copy.signal),
                "--plate",
                str(study_copy.plate),
                "--out",
                str(gallery),
                "-k",
                "2",
                "--per-cluster",
                "3",
            ]
        )
        == 0
    )
    assert gallery.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(KeyError, match="dynaclr reduce"):
        dynaclr(["plot", "scatter", str(study_copy.noise), "--out", str(figs)])


def test_cell_crops_come_from_the_plate(embedding_study):
    from iohub import open_ome_zarr

    from dynaclr.evaluation._crops import read_cell_crops

    obs = embedding_study.cells.iloc[[0, 7]]
    crops, names = read_cell_crops(embedding_study.plate, obs, size=16)
    assert names == ["Phase3D", "GFP"]
    assert crops.shape == (2, 2, 16, 16)
    row = obs.iloc[1]
    with open_ome_zarr(embedding_study.plate / row["fov_name"]) as position:
        image = np.asarray(position["0"][int(row["t"]), :, int(row["z"])])
    y0 = int(np.clip(round(row["y"]) - 8, 0, image.shape[-2] - 16))
    x0 = int(np.clip(round(row["x"]) - 8, 0, image.shape[-1] - 16))
    np.testing.assert_array_equal(crops[1], image[:, y0 : y0 + 16, x0 : x0 + 16])
