"""0.1.0 behaviour of the embedding writer module: store layout, reductions' keywords,
provenance and the xarray embedding stores (found by the compat harness, utils section)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from viscy_utils.callbacks.embedding_writer import (
    INDEX_COLUMNS,
    EmbeddingWriter,
    collect_data_provenance,
    get_available_index_columns,
    read_embedding_dataset,
    write_embedding_dataset,
)

anndata = pytest.importorskip("anndata")


def _inputs(n: int = 8):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, 5))
    projections = rng.normal(size=(n, 3)).astype(np.float32)
    index = pd.DataFrame({"fov_name": ["A/1/0"] * n, "track_id": np.arange(n), "t": 0})
    return features, projections, index


def test_x_is_the_embedding_key_and_the_other_array_goes_to_obsm(tmp_path):
    features, projections, index = _inputs()
    write_embedding_dataset(tmp_path / "f.zarr", features, index, projections)
    a = anndata.read_zarr(tmp_path / "f.zarr")
    assert a.X.dtype == np.float64  # dtype kept, not cast
    np.testing.assert_array_equal(a.X, features)
    assert set(a.obsm) == {"X_projections"}
    write_embedding_dataset(
        tmp_path / "p.zarr", features, index, projections, embedding_key="projections"
    )
    b = anndata.read_zarr(tmp_path / "p.zarr")
    np.testing.assert_array_equal(b.X, projections)
    np.testing.assert_array_equal(b.obsm["X_backbone"], features)
    assert "X_projections" not in b.obsm
    with pytest.raises(ValueError, match="needs projections"):
        write_embedding_dataset(tmp_path / "n.zarr", features, index, embedding_key="projections")


def test_reduction_keywords_of_0_1_0(tmp_path):
    pytest.importorskip("sklearn")
    features, projections, index = _inputs()
    # empty kwargs compute nothing
    write_embedding_dataset(tmp_path / "a.zarr", features, index, pca_kwargs={}, umap_kwargs={})
    assert set(anndata.read_zarr(tmp_path / "a.zarr").obsm) == set()
    # n_components=None keeps all components; normalize_features toggles standardization
    write_embedding_dataset(
        tmp_path / "b.zarr", features, index, pca_kwargs={"normalize_features": False}
    )
    pca = anndata.read_zarr(tmp_path / "b.zarr").obsm["X_pca"]
    assert pca.shape == (8, 5) and pca.dtype == np.float64
    centred = features - features.mean(axis=0)
    # all components of unscaled data: a rotation, so pairwise distances are kept
    np.testing.assert_allclose(
        np.linalg.norm(pca[0] - pca[1]), np.linalg.norm(centred[0] - centred[1]), rtol=1e-6
    )
    with pytest.raises(TypeError, match="random_state"):
        write_embedding_dataset(
            tmp_path / "c.zarr", features, index, pca_kwargs={"random_state": 0}
        )


def test_uns_metadata_is_stored_at_the_top_level(tmp_path):
    features, _, index = _inputs()
    write_embedding_dataset(
        tmp_path / "u.zarr", features, index, uns_metadata={"data_path": "/d.zarr", "k": 1}
    )
    uns = anndata.read_zarr(tmp_path / "u.zarr").uns
    assert uns["data_path"] == "/d.zarr" and uns["k"] == 1


def test_collect_data_provenance_stringifies_what_the_datamodule_has():
    ns = SimpleNamespace
    assert collect_data_provenance(ns(datamodule=ns(data_path=Path("/a"), tracks_path=3))) == {
        "data_path": "/a",
        "tracks_path": "3",
    }
    assert collect_data_provenance(ns(datamodule=ns(data_path=None))) == {"data_path": "None"}
    assert collect_data_provenance(ns(datamodule=None)) == {}
    assert collect_data_provenance(ns()) == {}


def test_embedding_writer_stores_datamodule_paths_in_uns(tmp_path):
    trainer = SimpleNamespace(
        datamodule=SimpleNamespace(data_path="/p.zarr", tracks_path="/tracks"), world_size=1
    )
    writer = EmbeddingWriter(tmp_path / "w.zarr", embedding_key="projections")
    batch = {
        "features": torch.ones(2, 4),
        "projections": torch.zeros(2, 3),
        "index": {"fov_name": ["A/1/0"] * 2, "track_id": torch.arange(2)},
    }
    writer.write_on_epoch_end(trainer, None, [batch], [])
    a = anndata.read_zarr(tmp_path / "w.zarr")
    assert a.uns["data_path"] == "/p.zarr" and a.uns["tracks_path"] == "/tracks"
    assert a.X.shape == (2, 3) and a.obsm["X_backbone"].shape == (2, 4)


def test_read_embedding_dataset_indexes_samples_and_warns_on_legacy(tmp_path, caplog):
    xr = pytest.importorskip("xarray")
    n = 4
    present = ["x", "t", "fov_name", "track_id"]  # stored out of order
    ds = xr.Dataset(
        {"features": (("sample", "feature"), np.arange(n * 2.0).reshape(n, 2))},
        coords={c: ("sample", np.arange(n)) for c in present},
    )
    ds.to_zarr(tmp_path / "x.zarr", zarr_format=2)
    with caplog.at_level(logging.WARNING, logger="lightning.pytorch"):
        read = read_embedding_dataset(tmp_path / "x.zarr")
    assert list(read.indexes["sample"].names) == ["fov_name", "track_id", "t", "x"]
    missing = sorted(set(INDEX_COLUMNS) - set(present))
    assert f"Dataset at {tmp_path / 'x.zarr'} is missing index columns: {missing}" in caplog.text
    np.testing.assert_array_equal(read["features"].values, ds["features"].values)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lightning.pytorch"):
        assert get_available_index_columns(read) == ["fov_name", "track_id", "t", "x"]
    assert "Dataset is missing index columns" in caplog.text


def test_index_columns_are_coordinates_only():
    xr = pytest.importorskip("xarray")
    as_variables = xr.Dataset({"t": ("s", [1]), "fov_name": ("s", ["a"])})
    assert get_available_index_columns(as_variables) == []
    as_coords = xr.Dataset(coords={"t": ("s", [1]), "fov_name": ("s", ["a"])})
    assert get_available_index_columns(as_coords) == ["fov_name", "t"]


def test_hcs_prediction_writer_keeps_output_store_a_str(tmp_path):
    from viscy_utils.callbacks import HCSPredictionWriter

    writer = HCSPredictionWriter(str(tmp_path / "pred.zarr"))
    assert writer.output_store == str(tmp_path / "pred.zarr")
