"""Training infrastructure for VisCy: CLI, trainer, callbacks, preprocessing, evaluation.

Public names are exported flat and imported lazily (PEP 562), so ``import viscy_utils``
pulls in neither lightning nor any optional dependency.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # command line and trainer
    "VisCyCLI": "_lightning_cli",
    "VisCyTrainer": "trainer",
    "main": "cli",
    "format_markdown_table": "cli_utils",
    "load_config": "cli_utils",
    "merge_configs": "cli_utils",
    # preprocessing and export
    "compute_normalization_stats": "preprocess",
    "generate_normalization_metadata": "preprocess",
    "write_normalization_metadata": "preprocess",
    "export_onnx": "export",
    "rechunk_store": "rechunk",
    # callbacks
    "EmbeddingWriter": "callbacks.embedding_writer",
    "HCSPredictionWriter": "callbacks.prediction_writer",
    "ImageGridLogger": "callbacks.image_logger",
    "EmbeddingSnapshotCallback": "callbacks.embedding_snapshot",
    "OnlineEvalCallback": "callbacks.online_eval",
    "write_embedding_dataset": "callbacks.embedding_writer",
    # evaluation
    "train_linear_classifier": "evaluation.linear_classifier",
    "knn_accuracy": "evaluation.knn",
    "temporal_smoothness": "evaluation.smoothness",
    "compute_pca": "evaluation.dimensionality_reduction",
    "compute_umap": "evaluation.dimensionality_reduction",
    "plot_embedding": "evaluation.dimensionality_reduction",
    # helpers (the 0.1.0 top-level names)
    "configure_adamw_scheduler": "optimizers",
    "detach_sample": "log_images",
    "render_images": "log_images",
    "detach_stacks": "log_images",
    "render_stack_grid": "log_images",
    "get_val_stats": "mp_utils",
    "mp_wrapper": "mp_utils",
    "hist_clipping": "normalize",
    "zscore": "normalize",
    "unzscore": "normalize",
    "to_numpy": "tensor_utils",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'viscy_utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
