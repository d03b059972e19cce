"""Lightning callbacks: prediction writers, image logging, embedding snapshots, online eval."""

from viscy_utils.callbacks.embedding_snapshot import EmbeddingSnapshotCallback
from viscy_utils.callbacks.embedding_writer import (
    EmbeddingWriter,
    collect_data_provenance,
    get_available_index_columns,
    read_embedding_dataset,
    write_embedding_dataset,
)
from viscy_utils.callbacks.image_logger import ImageGridLogger
from viscy_utils.callbacks.online_eval import OnlineEvalCallback
from viscy_utils.callbacks.prediction_writer import HCSPredictionWriter

__all__ = [
    "EmbeddingSnapshotCallback",
    "EmbeddingWriter",
    "HCSPredictionWriter",
    "ImageGridLogger",
    "OnlineEvalCallback",
    "collect_data_provenance",
    "get_available_index_columns",
    "read_embedding_dataset",
    "write_embedding_dataset",
]
