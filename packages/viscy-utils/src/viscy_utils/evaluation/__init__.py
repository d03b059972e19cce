"""Evaluation of learned embeddings: linear probes, k-NN, temporal smoothness, PCA/UMAP.

scikit-learn, matplotlib and umap-learn come with ``pip install 'viscy-utils[eval]'``
and are imported only when a function needs them.
"""

from viscy_utils.evaluation.annotation import load_annotation_anndata
from viscy_utils.evaluation.dimensionality_reduction import (
    compute_pca,
    compute_umap,
    plot_embedding,
)
from viscy_utils.evaluation.knn import knn_accuracy
from viscy_utils.evaluation.linear_classifier import (
    LinearClassifierResult,
    build_linear_classifier,
    train_linear_classifier,
)
from viscy_utils.evaluation.mmd import MMDResult, mmd_permutation_test
from viscy_utils.evaluation.smoothness import TemporalSmoothnessResult, temporal_smoothness

__all__ = [
    "LinearClassifierResult",
    "MMDResult",
    "TemporalSmoothnessResult",
    "build_linear_classifier",
    "compute_pca",
    "compute_umap",
    "knn_accuracy",
    "load_annotation_anndata",
    "mmd_permutation_test",
    "plot_embedding",
    "temporal_smoothness",
    "train_linear_classifier",
]
