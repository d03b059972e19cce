"""The Lightning Trainer used by the ``viscy`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger

from viscy_utils.export import export_onnx, verify_onnx


class VisCyTrainer(Trainer):
    """``lightning.pytorch.Trainer`` with VisCy defaults and an ``export`` method.

    Parameters
    ----------
    *args : Any
        Positional parameters of ``Trainer``.
    logger : Logger or bool or None
        Left unset (None) or True: a ``TensorBoardLogger`` writing under
        ``default_root_dir`` (the working directory if that is unset). False: no logger.
        For Weights & Biases pass a ``WandbLogger`` (it needs ``pip install wandb``).
    **kwargs : Any
        Keyword parameters of ``Trainer``.
    """

    def __init__(self, *args: Any, logger: Logger | bool | None = None, **kwargs: Any) -> None:
        if logger is None or logger is True:
            root = kwargs.get("default_root_dir") or Path.cwd()
            logger = TensorBoardLogger(save_dir=root, name="lightning_logs")
        super().__init__(*args, logger=logger, **kwargs)

    def export(
        self,
        model: LightningModule,
        export_path: Path,
        ckpt_path: Path | None = None,
        input_shape: tuple[int, ...] | None = None,
        format: str = "onnx",
        opset_version: int | None = None,
        overwrite: bool = False,
        datamodule: LightningDataModule | None = None,
        verify: bool = False,
        atol: float = 1e-4,
        dynamo: bool = True,
    ) -> Path:
        """Export a model (optionally from a checkpoint) to ONNX.

        Parameters
        ----------
        model : LightningModule
            The model (built from the config).
        export_path : Path
            The ``.onnx`` file to write.
        ckpt_path : Path, optional
            Checkpoint whose ``state_dict`` is loaded into ``model`` first.
        input_shape : tuple of int, optional
            Example input shape, e.g. ``(1, 1, 5, 256, 256)``; defaults to the
            shape of ``model.example_input_array``. The batch axis is exported
            as dynamic. A model's ``onnx_output_names`` attribute, when set, names the
            graph's outputs.
        format : str
            Only ``"onnx"``.
        opset_version : int, optional
            ONNX opset.
        overwrite : bool
            Replace an existing ``export_path``.
        datamodule : LightningDataModule, optional
            Ignored (accepted so a fit config can be reused).
        verify : bool
            Run the written graph with onnxruntime on the example input and raise if it
            differs from the model's output by more than ``atol``.
        atol : float
            Tolerance of ``verify``.
        dynamo : bool
            Use the ``torch.export``-based exporter (else the TorchScript one, which some
            models with shape-dependent branches need).

        Returns
        -------
        Path
            The written file.
        """
        if format != "onnx":
            raise ValueError(f"Only format='onnx' is supported, got {format!r}")
        if ckpt_path is not None:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
            model.load_state_dict(ckpt.get("state_dict", ckpt))
        if input_shape is not None:
            example = torch.zeros(tuple(input_shape))
        elif isinstance(getattr(model, "example_input_array", None), torch.Tensor):
            example = model.example_input_array
        else:
            raise ValueError(
                f"{type(model).__name__} has no example_input_array; pass input_shape "
                "(e.g. --input_shape [1,1,5,256,256])"
            )
        path = export_onnx(
            model.cpu(),
            export_path,
            example,
            opset_version=opset_version,
            overwrite=overwrite,
            output_names=getattr(model, "onnx_output_names", None),
            dynamo=dynamo,
        )
        if verify:
            diff = verify_onnx(model, path, example, atol=atol)
            print(f"ONNX graph {path} matches torch (max abs difference {diff:.2e})")
        return path
