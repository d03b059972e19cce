"""Evaluation tools of DynaCLR embeddings (linear probes on AnnData embeddings)."""

from dynaclr.evaluation.linear_classifier import (
    apply_linear_classifier,
    load_embeddings_with_labels,
    train_linear_classifier_on_embeddings,
)

__all__ = [
    "apply_linear_classifier",
    "load_embeddings_with_labels",
    "train_linear_classifier_on_embeddings",
]
