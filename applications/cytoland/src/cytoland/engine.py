"""LightningModules for virtual staining: :class:`VSUNet` and :class:`FcmaeUNet`.

Both take the batches of :class:`viscy_data.HCSDataModule` (``source`` and ``target``
tensors ``(B, C, Z, Y, X)``, whole FOVs with an ``index`` for prediction), train the chosen
viscy-models network with a pixel loss, log per-target metrics and image grids, and predict
whole FOVs with blended sliding windows (:mod:`cytoland.predict`) for
:class:`viscy_utils.HCSPredictionWriter`.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from cytoland.metrics import channel_metrics
from cytoland.predict import predict_sliding_window

__all__ = ["ARCHITECTURES", "FcmaeUNet", "VSUNet"]

_logger = logging.getLogger(__name__)

#: ``architecture`` name -> viscy-models class (the VisCy names "2D", "2.5D", "3D" included).
ARCHITECTURES: dict[str, str] = {
    "UNeXt2": "UNeXt2",
    "UNeXt2_2D": "FullyConvolutionalMAE",
    "fcmae": "FullyConvolutionalMAE",
    "Unet2d": "Unet2d",
    "2D": "Unet2d",
    "Unet25d": "Unet25d",
    "2.5D": "Unet25d",
    "Unet3d": "Unet3d",
    "3D": "Unet3d",
}

# parameter-name prefixes of each network's encoder (frozen by freeze_encoder, the part
# loaded by encoder_only)
_ENCODER_PREFIXES: dict[str, tuple[str, ...]] = {
    "UNeXt2": ("stem.", "encoder_stages."),
    "FullyConvolutionalMAE": ("encoder.",),
    "Unet2d": ("down_conv_block_", "bottom_transition_block."),
    "Unet25d": ("down_conv_block_", "bottom_transition_block."),
    "Unet3d": ("inconv.", "_downsamples.", "_encoder_blocks.", "bottleneck."),
}

_Schedule = Literal["WarmupCosine", "Constant"]


def _build_network(architecture: str, model_config: Mapping[str, Any]) -> nn.Module:
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}"
        )
    cls = getattr(importlib.import_module("viscy_models"), ARCHITECTURES[architecture])
    config = dict(model_config)
    if ARCHITECTURES[architecture] == "FullyConvolutionalMAE":
        config.setdefault("in_channels", 1)
        config.setdefault("out_channels", 1)
        config["pretraining"] = True  # forward returns (prediction, mask); see VSUNet.forward
    try:
        return cls(**config)
    except TypeError as exc:
        raise TypeError(f"model_config {config} does not fit {cls.__name__}: {exc}") from exc


class VSUNet(LightningModule):
    """Virtual staining: regress fluorescence targets from label-free sources.

    Parameters
    ----------
    architecture : str
        Network (a key of :data:`ARCHITECTURES`): ``"UNeXt2"`` (VSCyto3D-like; 2D with
        ``in_stack_depth: 1``), ``"UNeXt2_2D"``/``"fcmae"`` (FullyConvolutionalMAE,
        VSCyto2D-like), ``"Unet2d"``, ``"Unet25d"``, ``"Unet3d"``.
    model_config : dict
        Keyword arguments of the network's constructor (``in_channels``,
        ``out_channels``, ``in_stack_depth``, ...).
    loss_function : nn.Module, optional
        ``loss(prediction, target)``; mean squared error when None. For the VSCyto
        recipe use ``viscy_utils.losses.MixedLoss`` (L1 + MS-SSIM).
    lr : float
        Peak learning rate of AdamW.
    schedule : {"WarmupCosine", "Constant"}
        Learning-rate schedule, stepped every optimizer step: linear warmup over
        ``warmup_steps`` then cosine decay to zero at the last step, or constant.
    warmup_steps : int
        Warmup length of ``WarmupCosine`` (optimizer steps).
    freeze_encoder : bool
        Train only the decoder and head (the encoder's parameters get no gradient).
    ckpt_path : str, optional
        Checkpoint (Lightning ``.ckpt`` or a network ``state_dict``) to start from; tensors
        whose name and shape match are loaded, and missing, unexpected and mismatched keys
        are reported (``self.weights_report`` and the log).
    encoder_only : bool
        Load only the encoder's tensors from ``ckpt_path`` (fine-tuning a pretrained
        encoder with a new decoder).
    log_batches_per_epoch : int
        Validation batches whose first samples go into the image grid.
    log_samples_per_batch : int
        Samples per logged batch.
    log_images_every_n_epochs : int
        How often the source | target | prediction grid is written to TensorBoard.
    example_input_yx_shape : sequence of int
        Y/X of ``example_input_array`` (graph logging, ONNX export) and the default
        prediction tile.
    predict_tile_yx : sequence of int, optional
        Y/X tile of whole-FOV prediction (``example_input_yx_shape`` when None).
    predict_overlap_yx : sequence of int, optional
        Tile overlap in pixels (a quarter of the tile when None).
    test_time_augmentations : sequence of str, optional
        Names from :data:`cytoland.predict.TTA_TRANSFORMS` (or ``["all"]``) applied to each
        tile in prediction and test.
    tta_reduction : {"mean", "median"}
        How augmented predictions are combined.
    """

    def __init__(
        self,
        architecture: str = "UNeXt2",
        model_config: dict[str, Any] | None = None,
        loss_function: nn.Module | None = None,
        lr: float = 1e-3,
        schedule: _Schedule = "Constant",
        warmup_steps: int = 0,
        freeze_encoder: bool = False,
        ckpt_path: str | None = None,
        encoder_only: bool = False,
        log_batches_per_epoch: int = 4,
        log_samples_per_batch: int = 2,
        log_images_every_n_epochs: int = 1,
        example_input_yx_shape: Sequence[int] = (256, 256),
        predict_tile_yx: Sequence[int] | None = None,
        predict_overlap_yx: Sequence[int] | None = None,
        test_time_augmentations: Sequence[str] | None = None,
        tta_reduction: Literal["mean", "median"] = "mean",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["loss_function"])
        if schedule not in ("WarmupCosine", "Constant"):
            raise ValueError(f"schedule must be 'WarmupCosine' or 'Constant', got {schedule!r}")
        self.architecture = architecture
        self.model_config = dict(model_config or {})
        self.model = _build_network(architecture, self.model_config)
        self.loss_function = loss_function if loss_function is not None else nn.MSELoss()
        self.lr = lr
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)
        self.log_batches_per_epoch = log_batches_per_epoch
        self.log_samples_per_batch = log_samples_per_batch
        self.log_images_every_n_epochs = max(1, int(log_images_every_n_epochs))
        yx = tuple(int(s) for s in example_input_yx_shape)
        self.example_input_array = torch.rand(
            1, self.in_channels, self.in_stack_depth, yx[0], yx[1]
        )
        self.predict_tile_yx = tuple(predict_tile_yx or yx)
        self.predict_overlap_yx = None if predict_overlap_yx is None else tuple(predict_overlap_yx)
        self.test_time_augmentations = list(test_time_augmentations or [])
        self.tta_reduction = tta_reduction
        self.weights_report: dict[str, list[str]] | None = None
        if ckpt_path is not None:
            self.weights_report = self.load_weights(ckpt_path, encoder_only=encoder_only)
        elif encoder_only:
            raise ValueError("encoder_only=True needs a ckpt_path to load the encoder from")
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            for name, param in self.model.named_parameters():
                if self._is_encoder(name):
                    param.requires_grad_(False)
        self._image_rows: list[list[np.ndarray]] = []

    # ------------------------------------------------------------------ network

    @property
    def in_channels(self) -> int:
        return int(self.model_config.get("in_channels", 1))

    @property
    def in_stack_depth(self) -> int:
        if ARCHITECTURES[self.architecture] == "Unet2d":
            return 1
        depth = self.model_config.get("in_stack_depth")
        if depth is None:
            depth = 5 if ARCHITECTURES[self.architecture] != "Unet3d" else 16
        return int(depth)

    def _is_encoder(self, name: str) -> bool:
        return name.startswith(_ENCODER_PREFIXES[ARCHITECTURES[self.architecture]])

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, Z, Y, X) -> (B, C_out, Z_out, Y, X)``."""
        out = self.model(x)
        return out[0] if isinstance(out, tuple) else out

    def load_weights(self, ckpt_path: str | Path, encoder_only: bool = False) -> dict[str, list]:
        """Load the tensors of ``ckpt_path`` that fit this module; report the rest.

        Returns
        -------
        dict
            ``loaded``, ``missing`` (of this module, not in the file), ``unexpected`` (in
            the file, not in this module) and ``mismatched`` (same name, other shape) keys.
        """
        path = Path(ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path {path} does not exist")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else None
        if not isinstance(state, Mapping):
            raise ValueError(f"{path} holds no state_dict")
        if state and not any(k.startswith("model.") for k in state):
            state = {f"model.{k}": v for k, v in state.items()}  # a bare network state_dict
        if encoder_only:
            state = {k: v for k, v in state.items() if self._is_encoder(k.removeprefix("model."))}
            if not state:
                raise ValueError(f"{path} has no encoder tensors for {self.architecture}")
        own = self.state_dict()
        loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        report = {
            "loaded": sorted(loaded),
            "missing": sorted(k for k in own if k not in loaded),
            "unexpected": sorted(k for k in state if k not in own),
            "mismatched": sorted(k for k in state if k in own and own[k].shape != state[k].shape),
        }
        self.load_state_dict(loaded, strict=False)
        _logger.info(
            "Loaded %d tensors from %s%s; %d missing, %d unexpected, %d with another shape",
            len(report["loaded"]),
            path,
            " (encoder only)" if encoder_only else "",
            len(report["missing"]),
            len(report["unexpected"]),
            len(report["mismatched"]),
        )
        for kind in ("unexpected", "mismatched"):
            if report[kind]:
                _logger.warning("%s keys from %s: %s", kind, path, _preview(report[kind]))
        return report

    # ------------------------------------------------------------------ training

    def _target_names(self, count: int) -> list[str]:
        dm = getattr(getattr(self, "_trainer", None), "datamodule", None)
        names = list(getattr(dm, "target_channel", None) or [])
        return names if len(names) == count else [f"channel_{i}" for i in range(count)]

    def _check_shapes(self, pred: Tensor, target: Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(
                f"{self.architecture} predicted shape {tuple(pred.shape)} for a target of shape "
                f"{tuple(target.shape)}: check out_channels (one per target channel) and the "
                "output depth (out_stack_depth / target_2d) in the config"
            )

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        source, target = batch["source"], batch["target"]
        pred = self(source)
        self._check_shapes(pred, target)
        loss = self.loss_function(pred, target)
        self.log(
            "loss/train",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=source.shape[0],
        )
        return loss

    def _evaluate(self, stage: str, pred: Tensor, target: Tensor, names: list[str]) -> None:
        self._check_shapes(pred, target)
        loss = self.loss_function(pred, target)
        batch_size = target.shape[0]
        key = "validate" if stage == "val" else stage
        self.log(f"loss/{key}", loss, on_epoch=True, prog_bar=True, batch_size=batch_size)
        for channel, values in channel_metrics(pred.float(), target.float(), names).items():
            for metric, value in values.items():
                self.log(f"{stage}/{metric}/{channel}", value, on_epoch=True, batch_size=batch_size)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        source, target = batch["source"], batch["target"]
        pred = self(source)
        self._evaluate("val", pred, target, self._target_names(target.shape[1]))
        self._collect_images(batch_idx, source, target, pred)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        target = batch["target"]
        pred = self.predict_whole(batch["source"])
        self._evaluate("test", pred, target, self._target_names(target.shape[1]))

    # ------------------------------------------------------------------ prediction

    def predict_whole(self, source: Tensor) -> Tensor:
        """Predict whole ``(B, C, Z, Y, X)`` FOVs with blended tiles (and TTA)."""
        depth = self.in_stack_depth
        return predict_sliding_window(
            self,
            source,
            self.predict_tile_yx,
            self.predict_overlap_yx,
            z_window=depth if source.shape[2] > depth else None,
            tta=self.test_time_augmentations,
            tta_reduction=self.tta_reduction,
        )

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0):
        """Whole-FOV prediction ``(B, C_out, Z_out, Y, X)`` for ``HCSPredictionWriter``."""
        return self.predict_whole(batch["source"])

    # ------------------------------------------------------------------ images

    def _collect_images(self, batch_idx: int, *images: Tensor) -> None:
        if self.trainer.sanity_checking or batch_idx >= self.log_batches_per_epoch:
            return
        if self.current_epoch % self.log_images_every_n_epochs:
            return
        from viscy_utils.log_images import detach_stacks

        self._image_rows.extend(detach_stacks(images, self.log_samples_per_batch))

    def on_validation_epoch_end(self) -> None:
        rows, self._image_rows = self._image_rows, []
        if not rows:
            return
        from viscy_utils.log_images import render_stack_grid

        grid = render_stack_grid(rows)
        for logger in self.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image(
                    "val/source_target_prediction",
                    grid,
                    global_step=self.current_epoch,
                    dataformats="HWC",
                )

    # ------------------------------------------------------------------ optimizer

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("No trainable parameters (is everything frozen?)")
        optimizer = torch.optim.AdamW(params, lr=self.lr)
        if self.schedule == "Constant":
            return optimizer
        total = float(self.trainer.estimated_stepping_batches)
        if not math.isfinite(total) or total < 1:
            raise ValueError(
                "schedule='WarmupCosine' needs a finite number of steps (set max_epochs or "
                "max_steps)"
            )
        warmup = min(self.warmup_steps, int(total) - 1)
        decay = max(1.0, total - warmup)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / decay)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }


def _preview(keys: Sequence[str], n: int = 5) -> str:
    more = f" ... (+{len(keys) - n})" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


class FcmaeUNet(VSUNet):
    """FCMAE: masked-autoencoder pretraining on the label-free channel, then fine-tuning.

    With ``fit_mask_ratio > 0`` (pretraining) the network sees the source with that
    fraction of its patches masked and is trained to reconstruct the *source* there (the
    batch's target is ignored; ``out_channels`` must equal ``in_channels``). With
    ``fit_mask_ratio == 0`` it trains on the targets like :class:`VSUNet`; start it from a
    pretraining checkpoint with ``ckpt_path`` and ``encoder_only: true`` (the head's
    channels differ), optionally with ``freeze_encoder``.

    Parameters
    ----------
    fit_mask_ratio : float
        Fraction of masked patches during pretraining (0 to fine-tune).
    model_config : dict
        Keyword arguments of :class:`viscy_models.FullyConvolutionalMAE`.
    loss_function : nn.Module, optional
        ``loss(prediction, target)``; mean squared error when None. For the VSCyto
        recipe use ``viscy_utils.losses.MixedLoss`` (L1 + MS-SSIM).
    lr : float
        Peak learning rate of AdamW.
    schedule : {"WarmupCosine", "Constant"}
        Learning-rate schedule, stepped every optimizer step: linear warmup over
        ``warmup_steps`` then cosine decay to zero at the last step, or constant.
    warmup_steps : int
        Warmup length of ``WarmupCosine`` (optimizer steps).
    freeze_encoder : bool
        Train only the decoder and head (the encoder's parameters get no gradient).
    ckpt_path : str, optional
        Checkpoint (Lightning ``.ckpt`` or a network ``state_dict``) to start from; tensors
        whose name and shape match are loaded, and missing, unexpected and mismatched keys
        are reported (``self.weights_report`` and the log).
    encoder_only : bool
        Load only the encoder's tensors from ``ckpt_path`` (fine-tuning a pretrained
        encoder with a new decoder).
    log_batches_per_epoch : int
        Validation batches whose first samples go into the image grid.
    log_samples_per_batch : int
        Samples per logged batch.
    log_images_every_n_epochs : int
        How often the source | target | prediction grid is written to TensorBoard.
    example_input_yx_shape : sequence of int
        Y/X of ``example_input_array`` (graph logging, ONNX export) and the default
        prediction tile.
    predict_tile_yx : sequence of int, optional
        Y/X tile of whole-FOV prediction (``example_input_yx_shape`` when None).
    predict_overlap_yx : sequence of int, optional
        Tile overlap in pixels (a quarter of the tile when None).
    test_time_augmentations : sequence of str, optional
        Names from :data:`cytoland.predict.TTA_TRANSFORMS` (or ``["all"]``) applied to each
        tile in prediction and test.
    tta_reduction : {"mean", "median"}
        How augmented predictions are combined.
    """

    def __init__(
        self,
        fit_mask_ratio: float = 0.0,
        model_config: dict[str, Any] | None = None,
        loss_function: nn.Module | None = None,
        lr: float = 1e-3,
        schedule: _Schedule = "Constant",
        warmup_steps: int = 0,
        freeze_encoder: bool = False,
        ckpt_path: str | None = None,
        encoder_only: bool = False,
        log_batches_per_epoch: int = 4,
        log_samples_per_batch: int = 2,
        log_images_every_n_epochs: int = 1,
        example_input_yx_shape: Sequence[int] = (256, 256),
        predict_tile_yx: Sequence[int] | None = None,
        predict_overlap_yx: Sequence[int] | None = None,
        test_time_augmentations: Sequence[str] | None = None,
        tta_reduction: Literal["mean", "median"] = "mean",
    ) -> None:
        if not 0.0 <= fit_mask_ratio < 1.0:
            raise ValueError(f"fit_mask_ratio must be in [0, 1), got {fit_mask_ratio}")
        super().__init__(
            architecture="fcmae",
            model_config=model_config,
            loss_function=loss_function,
            lr=lr,
            schedule=schedule,
            warmup_steps=warmup_steps,
            freeze_encoder=freeze_encoder,
            ckpt_path=ckpt_path,
            encoder_only=encoder_only,
            log_batches_per_epoch=log_batches_per_epoch,
            log_samples_per_batch=log_samples_per_batch,
            log_images_every_n_epochs=log_images_every_n_epochs,
            example_input_yx_shape=example_input_yx_shape,
            predict_tile_yx=predict_tile_yx,
            predict_overlap_yx=predict_overlap_yx,
            test_time_augmentations=test_time_augmentations,
            tta_reduction=tta_reduction,
        )
        self.fit_mask_ratio = float(fit_mask_ratio)
        if self.pretraining and int(self.model_config.get("out_channels", 1)) != self.in_channels:
            raise ValueError(
                "FCMAE pretraining reconstructs the source: model_config out_channels "
                f"({self.model_config.get('out_channels', 1)}) must equal in_channels "
                f"({self.in_channels})"
            )

    @property
    def pretraining(self) -> bool:
        return self.fit_mask_ratio > 0

    def _masked(self, source: Tensor) -> tuple[Tensor, Tensor]:
        pred, mask = self.model(source, mask_ratio=self.fit_mask_ratio)
        # mask: (B, 1, Y, X), True where masked -> broadcast over channels and depth
        weight = mask.to(pred.dtype).unsqueeze(2) if pred.ndim == 5 else mask.to(pred.dtype)
        return pred * weight, source * weight

    def _target_names(self, count: int) -> list[str]:
        if not self.pretraining:
            return super()._target_names(count)
        dm = getattr(getattr(self, "_trainer", None), "datamodule", None)
        names = list(getattr(dm, "source_channel", None) or [])
        return names if len(names) == count else [f"channel_{i}" for i in range(count)]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if not self.pretraining:
            return super().training_step(batch, batch_idx)
        pred, target = self._masked(batch["source"])
        loss = self.loss_function(pred, target)
        self.log(
            "loss/train",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=pred.shape[0],
        )
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        if not self.pretraining:
            return super().validation_step(batch, batch_idx)
        source = batch["source"]
        pred, target = self._masked(source)
        self._evaluate("val", pred, target, self._target_names(source.shape[1]))
        self._collect_images(batch_idx, source, target, pred)
        return None
