"""Unit tests of the classification and multi-modal modules, pseudo-tracks, the study
helpers and the optional-dependency guard."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dynaclr import (
    ClassificationModule,
    MultiModalContrastiveModule,
    TinyEncoder,
    cross_modal_nt_xent,
    load_encoder_weights,
)
from dynaclr.classification import classification_metrics, render_confusion_matrix

TINY = {"width": 4, "embedding_dim": 8, "projection_dim": 4}


# ------------------------------------------------------------------ losses and metrics
def test_cross_modal_nt_xent_matches_definition_and_is_symmetric():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    t = 0.3
    sim = nn.functional.normalize(a, dim=1) @ nn.functional.normalize(b, dim=1).T / t
    a_to_b = -(sim.diagonal() - sim.logsumexp(dim=1)).mean()
    b_to_a = -(sim.diagonal() - sim.logsumexp(dim=0)).mean()
    expected = 0.5 * (a_to_b + b_to_a)
    torch.testing.assert_close(cross_modal_nt_xent(a, b, t), expected)
    torch.testing.assert_close(cross_modal_nt_xent(b, a, t), expected)
    # aligned pairs score lower than shuffled ones
    assert cross_modal_nt_xent(a, a + 0.01 * b, t) < cross_modal_nt_xent(a, b, t)
    with pytest.raises(ValueError, match="same projection_dim"):
        cross_modal_nt_xent(a, b[:, :4])


def test_classification_metrics_and_confusion_image():
    confusion = torch.tensor([[3, 1], [0, 4]])
    metrics = classification_metrics(confusion)
    assert metrics["accuracy"] == pytest.approx(7 / 8)
    f1_0, f1_1 = 2 * 3 / (4 + 3), 2 * 4 / (4 + 5)
    assert metrics["macro_f1"] == pytest.approx((f1_0 + f1_1) / 2)
    image = render_confusion_matrix(confusion, cell=10)
    assert image.shape == (20, 20, 3) and image.dtype == np.uint8
    assert image[15, 15].sum() < image[5, 15].sum()  # 4/4 darker than 1/4


# ------------------------------------------------------------------ checkpoints
def test_load_encoder_weights(tmp_path):
    source = TinyEncoder(in_channels=1, **TINY)
    path = tmp_path / "contrastive.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, path)
    target = load_encoder_weights(TinyEncoder(in_channels=1, **TINY), path)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)
    with pytest.raises(ValueError, match="no weights under prefix 'encoder.'"):
        load_encoder_weights(TinyEncoder(in_channels=1, **TINY), path, prefix="encoder.")
    with pytest.raises(ValueError, match="does not match"):
        load_encoder_weights(TinyEncoder(in_channels=1, width=8), path)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        load_encoder_weights(source, tmp_path / "missing.ckpt")


# ------------------------------------------------------------------ classification
def test_classification_module_frozen_encoder_and_bad_labels():
    module = ClassificationModule(
        TinyEncoder(in_channels=1, **TINY), num_classes=3, freeze_encoder=True
    )
    module.train()
    assert not module.encoder.training and module.head.training
    optimizer = module.configure_optimizers()
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in module.head.parameters()}
    logits = module(torch.rand(5, 1, 1, 16, 16))
    assert logits.shape == (5, 3)
    with pytest.raises(ValueError, match="outside 0..2"):
        module._step((torch.rand(2, 1, 1, 16, 16), torch.tensor([0.0, 3.0])), "train")
    with pytest.raises(ValueError, match="class_names has 1 names"):
        ClassificationModule(TinyEncoder(in_channels=1, **TINY), class_names=["a"])


# ------------------------------------------------------------------ multi-modal
class _Paired(torch.utils.data.Dataset):
    def __init__(self, n: int = 8) -> None:
        g = torch.Generator().manual_seed(0)
        self.lf = torch.rand(n, 1, 1, 16, 16, generator=g)
        self.fl = torch.rand(n, 1, 1, 16, 16, generator=g)

    def __len__(self) -> int:
        return len(self.lf)

    def __getitem__(self, i: int) -> dict:
        views = {"label_free": self.lf[i], "fluorescence": self.fl[i]}
        return {"anchor": views, "positive": {k: v.flip(-1) for k, v in views.items()}}


def test_multi_modal_distillation_keeps_the_teacher_fixed(tmp_path):
    from lightning.pytorch import Trainer

    torch.manual_seed(0)
    module = MultiModalContrastiveModule(
        TinyEncoder(in_channels=1, **TINY),
        TinyEncoder(in_channels=1, **TINY),
        in_modality_weight=0.5,
        freeze="target",
        lr=0.01,
    )
    teacher = {k: v.clone() for k, v in module.target_encoder.state_dict().items()}
    student = {k: v.clone() for k, v in module.source_encoder.state_dict().items()}
    trainer = Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, torch.utils.data.DataLoader(_Paired(), batch_size=4))
    for key, value in module.target_encoder.state_dict().items():
        torch.testing.assert_close(value, teacher[key])
    changed = [
        k for k, v in module.source_encoder.state_dict().items() if not torch.equal(v, student[k])
    ]
    assert changed
    assert math.isfinite(trainer.callback_metrics["loss/train"].item())


def test_multi_modal_rejects_unpaired_batches():
    module = MultiModalContrastiveModule(
        TinyEncoder(in_channels=1, **TINY), TinyEncoder(in_channels=1, **TINY)
    )
    with pytest.raises(TypeError, match="PairedChannelTripletDataModule"):
        module.predict_step({"anchor": torch.rand(2, 1, 1, 16, 16)}, 0)
    with pytest.raises(KeyError, match="not \\['fluorescence'\\]"):
        module.predict_step({"anchor": {"label_free": torch.rand(2, 1, 1, 16, 16)}}, 0)


# ------------------------------------------------------------------ pseudo-tracks
def test_objects_from_labels_masks_and_instances():
    from dynaclr.pseudo_tracks import objects_from_labels

    mask = np.zeros((1, 20, 20), dtype=np.uint8)
    mask[0, 2:6, 2:6] = 1  # 16 px, centre (3.5, 3.5)
    mask[0, 10:13, 14:17] = 1  # 9 px, centre (11, 15)
    mask[0, 18, 0] = 1  # 1 px, dropped by min_size
    found = objects_from_labels(mask, min_size=4)
    assert len(found) == 2
    np.testing.assert_allclose(found[["y", "x"]].to_numpy(), [[3.5, 3.5], [11, 15]])
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[0:4, 0:4] = 7
    labels[0:4, 4:8] = 9  # touching objects stay apart with instance labels
    assert len(objects_from_labels(labels)) == 2
    assert objects_from_labels(np.zeros((4, 4), np.uint8)).empty


def test_pseudo_tracks_errors(demo_plate, tmp_path, capsys):
    from dynaclr.cli import main
    from dynaclr.pseudo_tracks import write_pseudo_tracks

    root, plate = demo_plate
    data = root / "demo_output" / "plate.zarr"
    empty = pd.DataFrame({"fov_name": [], "t": [], "y": [], "x": []})
    with pytest.raises(ValueError, match="No objects found"):
        write_pseudo_tracks(data, tmp_path / "a", centroids=empty, progress=False)
    bad_fov = pd.DataFrame({"fov_name": ["Z/9/9"], "t": [0], "y": [5], "x": [5]})
    with pytest.raises(ValueError, match="Z/9/9"):
        write_pseudo_tracks(data, tmp_path / "b", centroids=bad_fov, progress=False)
    late = pd.DataFrame({"fov_name": [plate.fov_names[0]], "t": [99], "y": [5], "x": [5]})
    with pytest.raises(ValueError, match="'t' = 99"):
        write_pseudo_tracks(data, tmp_path / "c", centroids=late, progress=False)
    assert main(["pseudo-tracks", "--data-path", str(data), "--mask-channel", "DAPI"]
                + ["--out", str(tmp_path / "d")]) == 1  # fmt: skip
    assert "'DAPI' is not in the plate" in capsys.readouterr().err
    table = write_pseudo_tracks(data, tmp_path / "e", centroids=plate.cells, progress=False)
    assert len(table) == len(plate.cells)
    with pytest.raises(FileExistsError, match="exists"):
        write_pseudo_tracks(data, tmp_path / "e", centroids=plate.cells, progress=False)


# ------------------------------------------------------------------ study helpers
@pytest.fixture
def study_tree(tmp_path, two_experiments):
    """Plates with tracks, two models' checkpoints, one prediction store, one annotation."""
    from viscy_utils.callbacks import write_embedding_dataset

    exp_root, plates = two_experiments
    root = tmp_path / "study"
    (root / "data").mkdir(parents=True)
    for name in ("exp_a", "exp_b"):
        (root / "data" / f"{name}.zarr").symlink_to(exp_root / f"{name}.zarr")
        (root / "data" / f"{name}_tracks").symlink_to(exp_root / f"{name}_tracks")
    for model in ("modelA", "modelB"):
        ckpts = root / "runs" / model / "checkpoints"
        ckpts.mkdir(parents=True)
        (ckpts / "last.ckpt").write_bytes(b"x")
        (ckpts / "epoch=3.ckpt").write_bytes(b"x")
    obs = plates["exp_a"].cells[["fov_name", "track_id", "t"]]
    write_embedding_dataset(
        root / "predictions" / "modelA" / "exp_a.zarr", np.zeros((len(obs), 3)), obs
    )
    (root / "labels").mkdir()
    plates["exp_b"].cells[["fov_name", "track_id", "t", "infection_state"]].to_csv(
        root / "labels" / "exp_b_annotations.csv", index=False
    )
    pd.DataFrame({"a": [1]}).to_csv(root / "labels" / "unrelated.csv", index=False)
    return root


def test_discover_registry(study_tree, capsys):
    from dynaclr.cli import main
    from dynaclr.study.discover import read_registry

    out = study_tree / "registry.csv"
    assert main(["discover", str(study_tree), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 dataset, 2 tracks, 2 checkpoint, 1 predictions" in printed
    registry = read_registry(out)
    by_kind = registry.groupby("kind").size().to_dict()
    assert by_kind == {
        "dataset": 2,
        "tracks": 2,
        "checkpoint": 2,
        "predictions": 1,
        "annotations": 3,
    }
    ckpts = registry[registry["kind"] == "checkpoint"]
    assert sorted(ckpts["model"]) == ["modelA", "modelB"]
    assert all(p.endswith("last.ckpt") for p in ckpts["path"])
    pred = registry[registry["kind"] == "predictions"].iloc[0]
    assert (pred["model"], pred["dataset"]) == ("modelA", "exp_a")
    notes = registry[registry["kind"] == "annotations"]
    # the generator's cell_conditions.csv in each tracks root, and the CSV named after exp_b
    assert sorted(notes["dataset"]) == ["exp_a", "exp_b", "exp_b"]
    assert "unrelated.csv" not in " ".join(registry["path"])
    assert main(["discover", str(study_tree), "--out", str(out)]) == 1  # no overwrite


def test_generate_predict_scripts(study_tree, tmp_path):
    import yaml

    from dynaclr.cli import main
    from dynaclr.study.discover import discover

    registry = tmp_path / "registry.csv"
    discover(study_tree).to_csv(registry, index=False)
    template = Path(__file__).resolve().parents[1] / "examples" / "configs" / "predict.yml"
    jobs, preds = tmp_path / "jobs", tmp_path / "preds"
    argv = ["generate-predict-scripts", "--registry", str(registry), "--template", str(template)]
    argv += ["--out-dir", str(jobs), "--predictions-root", str(preds), "--partition", "gpu"]
    assert main(argv) == 0
    scripts = sorted(p.name for p in jobs.glob("*.sh") if p.name != "submit_all.sh")
    # modelA already predicted exp_a
    assert scripts == ["modelA__exp_b.sh", "modelB__exp_a.sh", "modelB__exp_b.sh"]
    bash = shutil.which("bash")
    for script in jobs.glob("*.sh"):
        subprocess.run([bash, "-n", str(script)], check=True)
    config = yaml.safe_load((jobs / "modelB__exp_a.yml").read_text())
    assert config["data"]["init_args"]["data_path"].endswith("exp_a.zarr")
    assert config["data"]["init_args"]["tracks_path"].endswith("exp_a_tracks")
    assert config["ckpt_path"].endswith("modelB/checkpoints/last.ckpt")
    writer = config["trainer"]["callbacks"][0]["init_args"]
    assert writer["output_path"] == str(preds.resolve() / "modelB" / "exp_a.zarr")
    text = (jobs / "modelB__exp_a.sh").read_text()
    assert "srun dynaclr predict -c" in text and "#SBATCH --partition=gpu" in text
    assert main([*argv, "--all"]) == 1  # files exist
    assert main([*argv, "--all", "--overwrite"]) == 0
    assert len(list(jobs.glob("*__*.sh"))) == 4


# ------------------------------------------------------------------ extras
def test_missing_extra_names_it(monkeypatch, capsys):
    import importlib.util

    from dynaclr._imports import MissingExtraError, require_extra
    from dynaclr.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name)
    )
    with pytest.raises(ImportError, match=r"pip install 'dynaclr\[eval\]'"):
        require_extra("eval", feature="probe")
    assert issubclass(MissingExtraError, ImportError)
    assert main(["train-linear-classifier", "--embeddings", "x.zarr"]) == 1
    err = capsys.readouterr().err
    assert "sklearn" in err and "dynaclr[eval]" in err


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("pseudo-tracks", "--mask-channel"),
        ("discover", "--out"),
        ("generate-predict-scripts", "--predictions-root"),
        ("generate-fit-config", "--recipe"),
    ],
)
def test_study_commands_help(command, option, capsys):
    from dynaclr.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert option in capsys.readouterr().out


def test_generate_fit_config_errors(two_experiments, tmp_path, capsys):
    from dynaclr.study.fit_config import build_fit_config, load_recipe

    exp_root, _ = two_experiments
    yaml_path = exp_root / "experiments.yml"
    with pytest.raises(ValueError, match=r"val_experiments \['exp_z'\]"):
        build_fit_config(yaml_path, "tiny", val_experiments=["exp_z"])
    with pytest.raises(ValueError, match="none is left to train"):
        build_fit_config(yaml_path, "tiny", val_experiments=["exp_a", "exp_b"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['optimizer'\]"):
        load_recipe({"optimizer": "sgd"})
    recipe = tmp_path / "recipe.yml"
    recipe.write_text("base: tiny\ndata: {batch_size: 7}\ntrainer: {max_epochs: 2}\n")
    config = build_fit_config(yaml_path, recipe)
    assert config["data"]["init_args"]["batch_size"] == 7
    assert config["data"]["init_args"]["yx_patch_size"] == [40, 40]  # from tiny
    assert config["trainer"]["max_epochs"] == 2
    assert config["model"]["init_args"]["encoder"]["class_path"].endswith("TinyEncoder")


def test_pseudo_tracks_from_an_ome_zarr_labels_group(tmp_path):
    import zarr

    from dynaclr.pseudo_tracks import write_pseudo_tracks
    from viscy_data.synthetic import write_synthetic_plate

    plate = write_synthetic_plate(
        tmp_path / "p.zarr",
        shape=(2, 1, 1, 32, 32),
        channel_names=("Phase3D",),
        wells=(("A", "1"),),
        fovs_per_well=1,
        version="0.4",
    )
    labels = np.zeros((2, 1, 1, 32, 32), dtype=np.int32)
    labels[0, 0, 0, 2:6, 2:6] = 1
    labels[0, 0, 0, 20:24, 10:14] = 2
    labels[1, 0, 0, 8:12, 8:12] = 5
    group = zarr.open_group(str(plate.path / "A" / "1" / "0"), mode="a")
    group.create_group("labels").create_group("cells").create_array(
        "0", shape=labels.shape, dtype=labels.dtype
    )[:] = labels
    table = write_pseudo_tracks(plate.path, tmp_path / "tracks", labels="cells", min_size=4)
    assert table[["t", "y", "x"]].to_numpy().tolist() == [
        [0, 3.5, 3.5],
        [0, 21.5, 11.5],
        [1, 9.5, 9.5],
    ]
    assert table["track_id"].tolist() == [1, 2, 3]
    written = pd.read_csv(tmp_path / "tracks" / "A" / "1" / "0" / "tracks.csv")
    assert len(written) == 3 and (written["parent_track_id"] == -1).all()
    del group["labels"]["cells"]["0"]  # a label image of another size than the FOV
    group["labels"]["cells"].create_array("0", shape=(2, 1, 1, 16, 16), dtype="int32")
    with pytest.raises(ValueError, match=r"has \(T, Z, Y, X\) = \(2, 1, 16, 16\)"):
        write_pseudo_tracks(plate.path, tmp_path / "t2", labels="cells", progress=False)
