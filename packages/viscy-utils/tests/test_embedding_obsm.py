"""Extra per-cell arrays (``obsm``) in the embedding store and the EmbeddingWriter."""

import numpy as np
import pandas as pd
import pytest
import torch

from viscy_utils.callbacks import EmbeddingWriter, write_embedding_dataset


def test_write_embedding_dataset_obsm(tmp_path):
    anndata = pytest.importorskip("anndata")
    obs = pd.DataFrame({"fov_name": ["A/1/0"] * 4, "track_id": range(4), "t": 0})
    second = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = write_embedding_dataset(
        tmp_path / "e.zarr", np.zeros((4, 2)), obs, obsm={"X_fluorescence": second}
    )
    np.testing.assert_array_equal(anndata.read_zarr(path).obsm["X_fluorescence"], second)
    with pytest.raises(ValueError, match="obsm\\['X_bad'\\] has 3 rows for 4 cells"):
        write_embedding_dataset(
            tmp_path / "f.zarr", np.zeros((4, 2)), obs, obsm={"X_bad": second[:3]}
        )


def test_embedding_writer_concatenates_obsm_of_every_batch(tmp_path):
    anndata = pytest.importorskip("anndata")
    writer = EmbeddingWriter(output_path=tmp_path / "w.zarr")
    batches = [
        {
            "features": torch.full((2, 3), float(b)),
            "index": {"fov_name": ["A/1/0", "A/1/0"], "track_id": torch.tensor([2 * b, 2 * b + 1])},
            "obsm": {"X_other": torch.full((2, 5), 10.0 + b), "X_partial": torch.zeros(2, 1)},
        }
        for b in range(3)
    ]

    class _Trainer:
        world_size = 1

    writer.write_on_epoch_end(_Trainer(), None, batches, [])
    adata = anndata.read_zarr(tmp_path / "w.zarr")
    np.testing.assert_array_equal(adata.obsm["X_other"][:, 0], [10, 10, 11, 11, 12, 12])
    assert adata.obsm["X_partial"].shape == (6, 1)
    assert list(adata.obs["track_id"]) == list(range(6))


def test_embedding_writer_rejects_obsm_missing_in_a_batch(tmp_path):
    writer = EmbeddingWriter(output_path=tmp_path / "w.zarr")
    batches = [
        {
            "features": torch.zeros(1, 2),
            "index": {"track_id": [0]},
            "obsm": {"X_a": torch.zeros(1, 1)},
        },
        {"features": torch.zeros(1, 2), "index": {"track_id": [1]}},
    ]
    batches[0]["obsm"] = {"X_a": torch.zeros(1, 1)}

    class _Trainer:
        world_size = 1

    with pytest.raises(KeyError, match="batch 1 has obsm keys \\[\\]"):
        writer.write_on_epoch_end(_Trainer(), None, batches, [])
    assert not (tmp_path / "w.zarr").exists()
