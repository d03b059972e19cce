import numpy as np
import pytest

from viscy_utils.evaluation import (
    compute_pca,
    knn_accuracy,
    plot_embedding,
    temporal_smoothness,
    train_linear_classifier,
)


def _blobs(n_per_class=60, n_classes=3, dim=16, sep=6.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, dim)) * sep
    x = np.concatenate([c + rng.normal(size=(n_per_class, dim)) for c in centers])
    y = np.repeat(np.array([f"class{i}" for i in range(n_classes)]), n_per_class)
    # 12 FOVs, each holding cells of every class
    groups = np.tile(np.arange(12), len(y) // 12 + 1)[: len(y)]
    return x, y, groups


def test_linear_classifier_separable_and_shuffled():
    x, y, groups = _blobs()
    result = train_linear_classifier(x, y, groups=groups, test_size=0.25, pca_components=8)
    assert result.accuracy > 0.95
    assert result.confusion_matrix.shape == (3, 3)
    assert result.n_train + result.n_test == len(y)
    # group-aware: no FOV on both sides
    assert not set(groups[result.train_indices]) & set(groups[result.test_indices])
    shuffled = np.random.default_rng(1).permutation(y)
    chance = train_linear_classifier(x, shuffled, groups=groups, test_size=0.25)
    assert chance.accuracy < 0.6  # chance is 1/3
    assert result.pipeline.predict(x[:5]).tolist() == y[:5].tolist()


def test_linear_classifier_drops_missing_and_rejects_one_class():
    x, y, _ = _blobs(n_classes=2)
    y = y.astype(object)
    y[:5] = None
    result = train_linear_classifier(x, y)
    assert result.n_train + result.n_test == len(y) - 5
    with pytest.raises(ValueError, match="at least 2 classes"):
        train_linear_classifier(x, np.zeros(len(x)))
    with pytest.raises(ValueError, match="labels must be 1-D"):
        train_linear_classifier(x, y[:-1])


def test_knn_accuracy():
    x, y, groups = _blobs()
    assert knn_accuracy(x, y, k=5, groups=groups) > 0.95
    assert knn_accuracy(x, y, k=5, mode="holdout") > 0.95
    shuffled = np.random.default_rng(2).permutation(y)
    assert knn_accuracy(x, shuffled, k=5) < 0.6


def test_temporal_smoothness_orders_smooth_and_random():
    rng = np.random.default_rng(0)
    n_tracks, n_t, dim = 10, 8, 8
    starts = rng.normal(size=(n_tracks, 1, dim)) * 5
    walk = np.cumsum(rng.normal(scale=0.1, size=(n_tracks, n_t, dim)), axis=1)
    smooth = (starts + walk).reshape(-1, dim)
    track_ids = np.repeat([f"A/1/0/{i}" for i in range(n_tracks)], n_t)
    t = np.tile(np.arange(n_t), n_tracks)
    order = rng.permutation(len(t))  # input order must not matter
    res = temporal_smoothness(smooth[order], track_ids[order], t[order])
    assert res.n_adjacent_pairs == n_tracks * (n_t - 1)
    assert res.ratio < 0.2
    noisy = rng.normal(size=smooth.shape)
    assert 0.8 < temporal_smoothness(noisy, track_ids, t).ratio < 1.2
    with pytest.raises(ValueError, match="No track"):
        temporal_smoothness(smooth[:3], ["a", "b", "c"], [0, 0, 0])


def test_pca_and_plot(tmp_path):
    x, y, _ = _blobs()
    coords, evr = compute_pca(x, n_components=3)
    assert coords.shape == (len(x), 3)
    assert np.all(np.diff(evr) <= 0)
    assert evr.sum() <= 1.0001
    png = tmp_path / "plots" / "pca.png"
    plot_embedding(coords, y, output_path=png, title="PCA", axis_prefix="PC")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_annotation_anndata_by_id_and_position(tmp_path):
    ad = pytest.importorskip("anndata")
    import pandas as pd

    from viscy_utils.evaluation import load_annotation_anndata

    obs = pd.DataFrame(
        {"fov_name": ["/A/1/0", "A/1/0", "B/1/0"], "id": [1, 2, 3], "t": [0, 0, 1],
         "y": [10.0, 50.0, 20.0], "x": [10.0, 50.0, 20.0]}
    )  # fmt: skip
    adata = ad.AnnData(X=np.zeros((3, 2), dtype=np.float32), obs=obs.set_axis(["a", "b", "c"]))
    by_id = tmp_path / "by_id.csv"
    pd.DataFrame({"fov_name": ["A/1/0", "B/1/0"], "id": [2, 3], "infection": [1, 0]}).to_csv(
        by_id, index=False
    )
    out = load_annotation_anndata(adata, str(by_id), "infection", categories={0: "no", 1: "yes"})
    assert out is adata  # 0.1.0 returns the AnnData, annotated in place
    assert adata.obs["infection"].tolist()[1:] == ["yes", "no"]
    assert str(adata.obs["infection"].dtype) == "category"
    assert pd.isna(adata.obs["infection"].iloc[0])
    by_pos = tmp_path / "by_pos.csv"
    pd.DataFrame(
        {"fov_name": ["A/1/0", "B/1/0"], "t": [0, 1], "y": [11.0, 40.0], "x": [12.0, 40.0],
         "division": ["mitosis", "interphase"]}
    ).to_csv(by_pos, index=False)  # fmt: skip
    del adata.obs["id"]
    load_annotation_anndata(adata, str(by_pos), "division", spatial_tolerance=4.0)
    assert adata.obs["division"].iloc[0] == "mitosis"
    assert pd.isna(adata.obs["division"].iloc[1])  # no annotation near (50, 50)
    assert pd.isna(adata.obs["division"].iloc[2])  # nearest is 28 px away


def test_load_annotation_anndata_tracks_and_division_frames(tmp_path):
    """0.1.0: without ``id``, cells match on (fov_name, t, track_id); where a key repeats
    (daughters at a division frame) each cell takes the annotation of its key within
    ``spatial_tolerance`` (Chebyshev); unmapped category values are kept."""
    ad = pytest.importorskip("anndata")
    import pandas as pd

    from viscy_utils.evaluation import load_annotation_anndata

    obs = pd.DataFrame(
        {"fov_name": ["A/1/0", "A/1/0", "B/1/0", "B/1/0"], "track_id": [1, 2, 3, 3],
         "t": [0, 0, 2, 2], "y": [5.0, 9.0, 20.0, 30.0], "x": [5.0, 9.0, 20.0, 30.0]}
    )  # fmt: skip
    adata = ad.AnnData(X=np.zeros((4, 2), dtype=np.float32), obs=obs.set_axis(list("abcd")))
    csv = tmp_path / "a.csv"
    pd.DataFrame(
        {"fov_name": ["/A/1/0", "A/1/0", "B/1/0"], "track_id": [1, 2, 3], "t": [0, 0, 2],
         "s": [0, 1, 2]}
    ).to_csv(csv, index=False)  # fmt: skip
    load_annotation_anndata(adata, str(csv), "s", categories={0: "no", 1: "yes"})
    assert adata.obs["s"].tolist() == ["no", "yes", 2, 2]
    pd.DataFrame(
        {"fov_name": ["A/1/0", "B/1/0", "B/1/0"], "track_id": [1, 3, 3], "t": [0, 2, 2],
         "y": [0.0, 21.0, 27.0], "x": [0.0, 23.0, 31.0], "s": [0, 1, 2]}
    ).to_csv(csv, index=False)  # fmt: skip
    load_annotation_anndata(adata, str(csv), "s")
    # (5, 5) is 5 px from (0, 0): every cell is matched by position once keys repeat
    assert pd.isna(adata.obs["s"].iloc[0]) and adata.obs["s"].tolist()[2:] == [1, 2]
    load_annotation_anndata(adata, str(csv), "s", spatial_tolerance=1.0)
    assert adata.obs["s"].isna().all()
    pd.read_csv(csv).drop(columns=["y", "x"]).to_csv(csv, index=False)
    del adata.obs["y"]
    with pytest.raises(ValueError, match="cannot be told apart"):
        load_annotation_anndata(adata, str(csv), "s")
    with pytest.raises(KeyError, match="nope"):
        load_annotation_anndata(adata, str(csv), "nope")


def test_missing_extra_names_the_extra():
    from viscy_utils._imports import optional_import

    with pytest.raises(ImportError, match=r"pip install 'viscy-utils\[eval\]'"):
        optional_import("sklearn_not_installed_here", "eval")
