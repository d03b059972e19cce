"""Cross-modal contrastive learning (CLIP-style), e.g. label-free <-> fluorescence.

`MultiModalContrastiveModule` embeds two channel sets of the same cell crops with two
encoders and pulls each cell's two embeddings together against the other cells of the
batch, in both directions (a symmetric NT-Xent / InfoNCE). Optional in-modality terms add
the usual DynaCLR positive (the same cell ``dt`` later) within each modality. Freezing one
side turns it into distillation: e.g. a fluorescence encoder trained with DynaCLR teaches
a label-free student.

Batches come from ``viscy_data.PairedChannelTripletDataModule``, whose views are
``{group: (B, C, Z, Y, X)}``; the two modality names are two of its ``channel_groups``.
Predictions go to ``viscy_utils.callbacks.EmbeddingWriter``: ``X`` holds the source
modality's features, ``obsm["X_<modality>"]`` / ``obsm["X_<modality>_projections"]``
both modalities' features and projections.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from dynaclr._checkpoint import freeze_module, load_encoder_weights
from dynaclr._logging import log_loss

__all__ = ["MultiModalContrastiveModule", "cross_modal_nt_xent"]


def cross_modal_nt_xent(a: Tensor, b: Tensor, temperature: float = 0.1) -> Tensor:
    """Symmetric NT-Xent between paired rows of ``a`` and ``b`` (CLIP's loss).

    Row ``i`` of ``a`` and row ``i`` of ``b`` are a positive pair; every other row of the
    other side is a negative. The loss is the mean of the ``a -> b`` and ``b -> a``
    cross-entropies over cosine similarities divided by ``temperature``.

    Parameters
    ----------
    a, b : Tensor
        (N, D) embeddings of the same N samples in two views or modalities.
    temperature : float
        Softmax temperature.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    if a.shape != b.shape:
        raise ValueError(
            f"The two modalities' embeddings differ in shape: {tuple(a.shape)} vs "
            f"{tuple(b.shape)} (give both encoders the same projection_dim)"
        )
    logits = F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class MultiModalContrastiveModule(LightningModule):
    """Two encoders, one per modality, trained with a cross-modal contrastive loss.

    Parameters
    ----------
    source_encoder, target_encoder : nn.Module
        Map (B, C, Z, Y, X) to ``(features, projections)``; both projections must have
        the same size. ``source_encoder`` is what ``forward`` (and ONNX export) runs.
    source_modality, target_modality : str
        Channel-group names of the data module (``channel_groups``) each encoder sees.
    temperature : float
        Temperature of the cross-modal NT-Xent.
    in_modality_weight : float
        Weight of the in-modality NT-Xent terms (anchor vs. positive of each trained
        modality); 0 leaves them out and positives are not needed.
    freeze : {"none", "source", "target"}
        Keep one encoder fixed (distillation into the other).
    source_ckpt_path, target_ckpt_path : str, optional
        Checkpoints (e.g. of ``ContrastiveModule``, weights under ``ckpt_prefix``) to load
        each encoder's weights from.
    ckpt_prefix : str
        Key prefix of the encoder in those checkpoints.
    lr, weight_decay : float
        AdamW settings.
    """

    #: names of the ONNX graph's outputs (``dynaclr export``)
    onnx_output_names = ("features", "projections")

    def __init__(
        self,
        source_encoder: nn.Module,
        target_encoder: nn.Module,
        source_modality: str = "label_free",
        target_modality: str = "fluorescence",
        temperature: float = 0.1,
        in_modality_weight: float = 0.0,
        freeze: Literal["none", "source", "target"] = "none",
        source_ckpt_path: str | None = None,
        target_ckpt_path: str | None = None,
        ckpt_prefix: str = "model.",
        lr: float = 1e-4,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__()
        if source_modality == target_modality:
            raise ValueError(f"source and target modality are both {source_modality!r}")
        if freeze not in ("none", "source", "target"):
            raise ValueError(f"freeze must be 'none', 'source' or 'target', got {freeze!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.save_hyperparameters(ignore=["source_encoder", "target_encoder"])
        if source_ckpt_path is not None:
            load_encoder_weights(source_encoder, source_ckpt_path, prefix=ckpt_prefix)
        if target_ckpt_path is not None:
            load_encoder_weights(target_encoder, target_ckpt_path, prefix=ckpt_prefix)
        self.source_encoder = source_encoder
        self.target_encoder = target_encoder
        self.modalities = (source_modality, target_modality)
        self.temperature = temperature
        self.in_modality_weight = in_modality_weight
        self.freeze = freeze
        self.lr = lr
        self.weight_decay = weight_decay
        for frozen in self._frozen():
            freeze_module(frozen)

    def _frozen(self) -> list[nn.Module]:
        return {
            "none": [],
            "source": [self.source_encoder],
            "target": [self.target_encoder],
        }[self.freeze]

    def train(self, mode: bool = True) -> MultiModalContrastiveModule:
        """Set train/eval mode; a frozen encoder always stays in eval mode."""
        super().train(mode)
        for frozen in self._frozen():
            frozen.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(features, projections)`` of the source encoder."""
        return self.source_encoder(x)

    def _views(self, batch: dict[str, Any], key: str) -> tuple[Tensor, Tensor]:
        view = batch.get(key)
        if not isinstance(view, dict):
            raise TypeError(
                f"batch[{key!r}] must map channel groups to crops ({{group: tensor}}); use "
                "viscy_data.PairedChannelTripletDataModule with channel_groups naming "
                f"{list(self.modalities)}"
            )
        missing = [m for m in self.modalities if m not in view]
        if missing:
            raise KeyError(
                f"batch[{key!r}] has channel groups {sorted(view)}, not {missing}: set "
                "source_modality/target_modality to names of the data module's channel_groups"
            )
        return view[self.modalities[0]], view[self.modalities[1]]

    def _step(self, batch: dict[str, Any], stage: str) -> Tensor:
        source, target = self._views(batch, "anchor")
        n = source.shape[0]
        use_positive = self.in_modality_weight > 0
        if use_positive:
            if "positive" not in batch:
                raise KeyError("in_modality_weight > 0 needs 'positive' crops in the batch")
            source_pos, target_pos = self._views(batch, "positive")
            source = torch.cat([source, source_pos])
            target = torch.cat([target, target_pos])
        _, source_proj = self.source_encoder(source)
        if self.freeze == "target":
            with torch.no_grad():
                _, target_proj = self.target_encoder(target)
        else:
            _, target_proj = self.target_encoder(target)
        loss = cross_modal_nt_xent(source_proj[:n], target_proj[:n], self.temperature)
        logs = {f"loss/cross_modal/{stage}": loss.detach()}
        if use_positive:
            for name, proj, frozen in (
                ("source", source_proj, self.freeze == "source"),
                ("target", target_proj, self.freeze == "target"),
            ):
                if frozen:
                    continue
                term = cross_modal_nt_xent(proj[:n], proj[n:], self.temperature)
                logs[f"loss/in_modality_{name}/{stage}"] = term.detach()
                loss = loss + self.in_modality_weight * term
        with torch.no_grad():
            a = F.normalize(source_proj[:n].float(), dim=1)
            b = F.normalize(target_proj[:n].float(), dim=1)
            sim = a @ b.T
            positive = sim.diagonal().mean()
            off = ~torch.eye(n, dtype=torch.bool, device=sim.device)
            negative = sim[off].mean() if n > 1 else torch.zeros((), device=sim.device)
        logs[f"metrics/cosine_similarity_positive/{stage}"] = positive
        logs[f"metrics/cosine_similarity_negative/{stage}"] = negative
        log_loss(self, loss, stage, n)
        self.log_dict(logs, on_step=False, on_epoch=True, sync_dist=stage != "train", batch_size=n)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def predict_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        """Both modalities' embeddings of ``batch["anchor"]``.

        Returns
        -------
        dict
            ``{"features", "projections"}`` of the source modality, ``"obsm"`` with
            ``X_<modality>`` and ``X_<modality>_projections`` of both, and ``"index"``:
            the input of ``viscy_utils.callbacks.EmbeddingWriter``.
        """
        source, target = self._views(batch, "anchor")
        source_features, source_proj = self.source_encoder(source)
        target_features, target_proj = self.target_encoder(target)
        s, t = self.modalities
        return {
            "features": source_features,
            "projections": source_proj,
            "obsm": {
                f"X_{s}": source_features,
                f"X_{s}_projections": source_proj,
                f"X_{t}": target_features,
                f"X_{t}_projections": target_proj,
            },
            "index": batch.get("index"),
        }

    def configure_optimizers(self) -> torch.optim.Optimizer:
        parameters = [p for p in self.parameters() if p.requires_grad]
        if not parameters:
            raise ValueError("Both encoders are frozen: nothing to train")
        return torch.optim.AdamW(parameters, lr=self.lr, weight_decay=self.weight_decay)
