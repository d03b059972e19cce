"""Fine-tune a (pretrained) DynaCLR encoder to classify annotated cells.

`ClassificationModule` puts a linear or MLP head on any encoder that maps a
(B, C, Z, Y, X) batch to ``(features, projections)``, and trains on the
``(image, label)`` batches of ``viscy_data.ClassificationDataModule``. Its
``predict_step`` output goes to ``viscy_utils.callbacks.EmbeddingWriter``: the store's
``X`` holds the class probabilities, ``obs`` the cell index (``fov_name, track_id, t,
...``) with ``predicted_class`` (and ``predicted_label`` when ``class_names`` are given),
and ``obsm["X_features"]`` the encoder features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from dynaclr._checkpoint import freeze_module, load_encoder_weights
from dynaclr._logging import log_loss

__all__ = ["ClassificationModule", "classification_metrics", "render_confusion_matrix"]


def _infer_embedding_dim(encoder: nn.Module) -> int:
    """Features size of DynaCLR encoders: the input size of their projection MLP."""
    projection = getattr(encoder, "projection", None)
    if isinstance(projection, nn.Module):
        for layer in projection.modules():
            if isinstance(layer, nn.Linear):
                return layer.in_features
    raise ValueError(
        f"Cannot tell the feature size of {type(encoder).__name__} (no 'projection' MLP "
        "starting with nn.Linear); pass embedding_dim"
    )


def _build_head(in_dim: int, hidden_dims: Sequence[int], num_classes: int, dropout: float):
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [nn.Linear(in_dim, int(width)), nn.GELU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = int(width)
    if dropout > 0 and not hidden_dims:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(in_dim, num_classes))
    return nn.Sequential(*layers)


def classification_metrics(confusion: Tensor) -> dict[str, float]:
    """Accuracy and macro F1 from a (K, K) confusion matrix (rows: true, columns: predicted).

    Classes that are neither present nor predicted are left out of the macro average.
    """
    confusion = confusion.double()
    total = confusion.sum()
    accuracy = (confusion.diag().sum() / total).item() if total > 0 else float("nan")
    true_positive = confusion.diag()
    support = confusion.sum(dim=1)
    predicted = confusion.sum(dim=0)
    seen = (support + predicted) > 0
    f1 = 2 * true_positive / (support + predicted).clamp(min=1)
    macro_f1 = f1[seen].mean().item() if seen.any() else float("nan")
    return {"accuracy": accuracy, "macro_f1": macro_f1}


def render_confusion_matrix(confusion: Tensor, cell: int = 24) -> np.ndarray:
    """A (K*cell, K*cell, 3) uint8 picture of a row-normalized confusion matrix.

    Each true class (row) is scaled to its count; white is 0, dark blue is 1.
    """
    counts = confusion.double().cpu()
    rows = counts.sum(dim=1, keepdim=True).clamp(min=1)
    fraction = (counts / rows).numpy()
    white = np.array([255.0, 255.0, 255.0])
    blue = np.array([8.0, 48.0, 107.0])
    colors = white + fraction[..., None] * (blue - white)
    image = np.repeat(np.repeat(colors, cell, axis=0), cell, axis=1)
    image[::cell, :] = 128  # grid lines
    image[:, ::cell] = 128
    return image.round().astype(np.uint8)


class ClassificationModule(LightningModule):
    """A DynaCLR encoder plus a classification head, trained with cross-entropy.

    Parameters
    ----------
    encoder : nn.Module
        Maps (B, C, Z, Y, X) to ``(features, projections)`` (e.g. ``TinyEncoder`` or
        ``viscy_models.ContrastiveEncoder``), built with the architecture of the
        checkpoint it is loaded from.
    num_classes : int
        Number of classes; labels are ``0 .. num_classes - 1`` (rows labeled ``-1`` are
        left out by the data module).
    encoder_ckpt_path : str, optional
        Checkpoint to load the encoder weights from (a ``ContrastiveModule`` checkpoint:
        weights under ``model.``). The encoder is trained from scratch when None.
    encoder_ckpt_prefix : str
        Key prefix of the encoder in that checkpoint's state dict.
    freeze_encoder : bool
        Train only the head (linear probing); the encoder stays in eval mode.
    head_hidden_dims : list of int
        Hidden layer widths of an MLP head; empty for a linear head.
    head_dropout : float
        Dropout before each head layer's activation output.
    embedding : {"features", "projections"}
        Encoder output the head reads.
    embedding_dim : int, optional
        Size of that output; inferred from DynaCLR encoders' projection MLP when None.
    class_weights : list of float, optional
        Cross-entropy weight per class (e.g. inverse frequencies).
    class_names : list of str, optional
        Names of the classes, for the ``predicted_label`` prediction column.
    lr, weight_decay : float
        AdamW settings.
    log_confusion_matrix : bool
        Log a confusion-matrix image at the end of each validation epoch (TensorBoard).
    example_input_array_shape : sequence of int, optional
        Shape of a dummy input for Lightning's model summary and ONNX export.
    """

    #: names of the ONNX graph's outputs (``dynaclr export``)
    onnx_output_names = ("logits",)

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int = 2,
        encoder_ckpt_path: str | None = None,
        encoder_ckpt_prefix: str = "model.",
        freeze_encoder: bool = False,
        head_hidden_dims: list[int] | None = None,
        head_dropout: float = 0.0,
        embedding: Literal["features", "projections"] = "features",
        embedding_dim: int | None = None,
        class_weights: list[float] | None = None,
        class_names: list[str] | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        log_confusion_matrix: bool = True,
        example_input_array_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(
                f"class_weights has {len(class_weights)} values for {num_classes} classes"
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
        self.save_hyperparameters(ignore=["encoder"])
        if encoder_ckpt_path is not None:
            load_encoder_weights(encoder, encoder_ckpt_path, prefix=encoder_ckpt_prefix)
        self.encoder = encoder
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            freeze_module(self.encoder)
        self.embedding = embedding
        if embedding_dim is None:
            embedding_dim = _infer_embedding_dim(encoder)
            if embedding == "projections":
                raise ValueError("embedding='projections' needs embedding_dim")
        self.head = _build_head(embedding_dim, head_hidden_dims or [], num_classes, head_dropout)
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weight, persistent=False)
        self.lr = lr
        self.weight_decay = weight_decay
        self.log_confusion_matrix = log_confusion_matrix
        if example_input_array_shape is not None:
            self.example_input_array = torch.rand(*example_input_array_shape)
        self._confusion: dict[str, Tensor] = {}

    def train(self, mode: bool = True) -> ClassificationModule:
        """Set train/eval mode; a frozen encoder always stays in eval mode."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def embed(self, x: Tensor) -> Tensor:
        """The encoder output the head reads, (B, D)."""
        features, projections = self.encoder(x)
        return features if self.embedding == "features" else projections

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, num_classes) of a (B, C, Z, Y, X) batch."""
        return self.head(self.embed(x))

    # ------------------------------------------------------------------ steps
    @staticmethod
    def _unpack(batch: Any) -> tuple[Tensor, Tensor | None, Any]:
        if isinstance(batch, dict):
            return batch["anchor"], batch.get("label"), batch.get("index")
        if isinstance(batch, list | tuple):
            image = batch[0]
            label = batch[1] if len(batch) > 1 else None
            index = batch[2] if len(batch) > 2 else None
            return image, label, index
        raise TypeError(
            f"ClassificationModule expects (image, label[, index]) batches, got {type(batch)}"
        )

    def _step(self, batch: Any, stage: str) -> Tensor:
        image, label, _ = self._unpack(batch)
        if label is None:
            raise KeyError(f"{stage} batch has no label")
        target = label.long().reshape(-1)  # ClassificationDataset labels are (B, 1)
        bad = (target < 0) | (target >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"{stage} batch has label(s) {sorted(set(target[bad].tolist()))} outside "
                f"0..{self.num_classes - 1}: set num_classes, or mark unlabeled cells -1"
            )
        logits = self(image)
        loss = F.cross_entropy(logits, target, weight=self.class_weights)
        prediction = logits.argmax(dim=1)
        confusion = torch.bincount(
            target * self.num_classes + prediction, minlength=self.num_classes**2
        ).reshape(self.num_classes, self.num_classes)
        if stage in self._confusion:
            self._confusion[stage] = self._confusion[stage] + confusion.detach()
        else:
            self._confusion[stage] = confusion.detach()
        log_loss(self, loss, stage, image.shape[0])
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def _epoch_metrics(self, stage: str) -> None:
        confusion = self._confusion.pop(stage, None)
        if confusion is None:
            return
        if self.trainer is not None and self.trainer.world_size > 1:
            confusion = self.trainer.strategy.reduce(confusion, reduce_op="sum")
        metrics = classification_metrics(confusion)
        self.log_dict(
            {f"metrics/{name}/{stage}": value for name, value in metrics.items()},
            on_step=False,
            on_epoch=True,
        )
        if stage == "val" and self.log_confusion_matrix and not self.trainer.sanity_checking:
            add_image = getattr(getattr(self.logger, "experiment", None), "add_image", None)
            if callable(add_image):
                image = render_confusion_matrix(confusion)
                add_image("val_confusion_matrix", image, self.current_epoch, dataformats="HWC")

    def on_train_epoch_end(self) -> None:
        self._epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._epoch_metrics("val")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Class probabilities, the predicted class and the encoder features of a batch.

        Returns
        -------
        dict
            ``{"features": probabilities (B, K), "index": the cells' index plus
            "predicted_class" (and "predicted_label"), "obsm": {"X_features": (B, D)}}``,
            the input of ``viscy_utils.callbacks.EmbeddingWriter``.
        """
        image, _, index = self._unpack(batch)
        embedding = self.embed(image)
        probabilities = torch.softmax(self.head(embedding), dim=1)
        predicted = probabilities.argmax(dim=1)
        index = dict(index) if index is not None else {}
        index["predicted_class"] = predicted
        if self.class_names is not None:
            index["predicted_label"] = [self.class_names[i] for i in predicted.tolist()]
        return {"features": probabilities, "index": index, "obsm": {"X_features": embedding}}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        parameters = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(parameters, lr=self.lr, weight_decay=self.weight_decay)
