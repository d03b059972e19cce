"""Lightning callbacks: prediction writers, image logging, embedding snapshots."""

from viscy_utils.callbacks.embedding_writer import EmbeddingWriter, write_embedding_dataset
from viscy_utils.callbacks.image_logger import ImageGridLogger
from viscy_utils.callbacks.prediction_writer import HCSPredictionWriter

__all__ = [
    "EmbeddingWriter",
    "HCSPredictionWriter",
    "ImageGridLogger",
    "write_embedding_dataset",
]
