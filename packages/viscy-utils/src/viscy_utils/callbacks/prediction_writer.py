"""Write predicted images to an HCS OME-Zarr plate mirroring the input plate."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from viscy_utils.callbacks._atomic import remove_path, replace_path, temporary_sibling

_logger = logging.getLogger(__name__)


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _index_columns(index: Any) -> tuple[list[str], list[int], list[int]]:
    """(fov_names, t, z) from a collated batch index.

    Accepts a dict with ``fov_name`` (or ``image``), ``t`` (or ``time``) and
    ``z`` columns, or a collated ``HCSStackIndex`` ``(image, time, z)``.
    """
    if isinstance(index, Mapping):
        names = index.get("fov_name", index.get("image"))
        times = index.get("t", index.get("time"))
        zs = index.get("z")
    else:
        names, times, zs = index
    if names is None or times is None or zs is None:
        raise KeyError("batch index needs fov_name (or image), t (or time) and z columns")

    def ints(v: Any) -> list[int]:
        return [int(x) for x in (v.tolist() if isinstance(v, torch.Tensor) else v)]

    return [str(n) for n in names], ints(times), ints(zs)


def _coordinate_transforms(position: Any) -> list | None:
    """The first image's coordinate transformations (pixel scale, translation), if any."""
    try:
        return list(position.metadata.multiscales[0].datasets[0].coordinate_transformations)
    except (AttributeError, IndexError, TypeError):
        return None


class HCSPredictionWriter(BasePredictionWriter):
    """Write image predictions into an OME-Zarr plate with the input's layout.

    ``predict_step`` returns a ``(B, C, Z, Y, X)`` tensor (or a dict holding it
    under ``"prediction"``); the batch carries ``"index"`` with each sample's
    ``fov_name``, ``t`` and ``z`` (first slice of the input Z window), as
    HCS data modules provide. The output plate has the same FOVs, T, Z, Y and X
    (and each FOV's coordinate transformations, e.g. its pixel scale) as the input and
    channels ``<target><prediction_suffix>`` (plus the source and target channels when
    ``write_input``). An output of depth ``Z_out`` smaller
    than the input window is written centred on the window.

    Input plate, channels and window depth are read from the datamodule
    (``data_path``, ``source_channel``, ``target_channel``, ``z_window_size``)
    unless given here. The plate is written under a temporary name and moved to
    ``output_store`` when prediction ends.

    Parameters
    ----------
    output_store : str
        The ``.zarr`` plate to create.
    overwrite : bool
        Replace an existing ``output_store``.
    write_input : bool
        Also copy the source (and target) channel images of each predicted slice.
    write_interval : {"batch", "epoch", "batch_and_epoch"}
        When predictions are written (``"batch"`` keeps memory flat).
    input_store, source_channel, target_channel, z_window_size : optional
        Override what is read from the datamodule.
    prediction_suffix : str
        Appended to each target channel name to name its prediction channel.
    """

    def __init__(
        self,
        output_store: str,
        overwrite: bool = False,
        write_input: bool = False,
        write_interval: Literal["batch", "epoch", "batch_and_epoch"] = "batch",
        input_store: str | None = None,
        source_channel: str | Sequence[str] | None = None,
        target_channel: str | Sequence[str] | None = None,
        z_window_size: int | None = None,
        prediction_suffix: str = "_prediction",
    ) -> None:
        super().__init__(write_interval)
        self.prediction_suffix = prediction_suffix
        self.output_store = str(output_store)  # a str, as in 0.1.0
        self._store_path = Path(output_store)
        self.overwrite = overwrite
        self.write_input = write_input
        self.input_store = input_store
        self.source_channel = source_channel
        self.target_channel = target_channel
        self.z_window_size = z_window_size
        self._plate = None
        self._input_plate = None
        self._tmp: Path | None = None

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the output path and create the (temporary) output plate."""
        from iohub.ngff import open_ome_zarr

        if self._store_path.exists() and not self.overwrite:
            raise FileExistsError(
                f"HCSPredictionWriter output {self.output_store} exists; set overwrite=True"
            )
        if trainer.world_size > 1:
            raise NotImplementedError(
                "HCSPredictionWriter writes from a single process; predict on one device"
            )
        dm = trainer.datamodule
        input_store = self.input_store or getattr(dm, "data_path", None)
        if input_store is None:
            raise ValueError("HCSPredictionWriter needs input_store (or a datamodule.data_path)")
        targets = _as_list(self.target_channel or getattr(dm, "target_channel", None))
        sources = _as_list(self.source_channel or getattr(dm, "source_channel", None))
        if not targets:
            raise ValueError("HCSPredictionWriter needs target_channel names to name outputs")
        self._z_window = self.z_window_size or getattr(dm, "z_window_size", None)
        self._prediction_channels = [f"{ch}{self.prediction_suffix}" for ch in targets]
        self._input_channels = [*sources, *[t for t in targets if t not in sources]]
        channels = list(self._prediction_channels)
        if self.write_input:
            channels = [*self._input_channels, *channels]
        self._input_plate = open_ome_zarr(input_store, layout="hcs", mode="r")
        missing = [c for c in self._input_channels if c not in self._input_plate.channel_names]
        if self.write_input and missing:
            raise ValueError(f"Channel(s) {missing} not in input plate {input_store}")
        self._store_path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temporary_sibling(self._store_path)
        self._plate = open_ome_zarr(
            self._tmp,
            layout="hcs",
            mode="w-",
            channel_names=channels,
            version=self._input_plate.version,
        )
        for name, pos in self._input_plate.positions():
            row, col, fov = name.split("/")
            out = self._plate.create_position(row, col, fov)
            t, _, z, y, x = pos["0"].shape
            out.create_zeros(
                "0",
                shape=(t, len(channels), z, y, x),
                dtype=np.float32,
                chunks=(1, 1, z, y, x),
                transform=_coordinate_transforms(pos),
            )
        self._channels = channels

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Write each sample of one predicted batch."""
        if isinstance(prediction, Mapping):
            prediction = prediction["prediction"]
        names, times, zs = _index_columns(batch["index"])
        for i, (name, t, z) in enumerate(zip(names, times, zs, strict=True)):
            self.write_sample(prediction[i], name, t, z)

    def write_on_epoch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        """Not supported: the batch index is needed, so use ``write_interval="batch"``."""
        if self.interval.on_epoch and not self.interval.on_batch:
            raise NotImplementedError("HCSPredictionWriter writes per batch; use 'batch'")

    def write_sample(
        self, prediction: torch.Tensor | np.ndarray, fov_name: str, t: int, z: int
    ) -> None:
        """Write one ``(C, Z_out, Y, X)`` prediction at FOV ``fov_name``, time ``t``.

        ``z`` is the first slice of the input window; the prediction is centred
        in a window of ``z_window_size`` slices (its own depth if unknown).
        """
        if self._plate is None:
            raise RuntimeError("write_sample called before on_predict_start")
        pred = (
            prediction.detach().float().cpu().numpy()
            if isinstance(prediction, torch.Tensor)
            else np.asarray(prediction)
        )
        if pred.ndim == 3:
            pred = pred[:, None]
        if pred.shape[0] != len(self._prediction_channels):
            raise ValueError(
                f"Prediction has {pred.shape[0]} channels, expected "
                f"{len(self._prediction_channels)} ({self._prediction_channels})"
            )
        depth = pred.shape[1]
        window = self._z_window or depth
        z0 = z + (window - depth) // 2
        out = self._plate[fov_name]["0"]
        n_in = len(self._channels) - len(self._prediction_channels)
        if z0 < 0 or z0 + depth > out.shape[2]:
            raise ValueError(f"Prediction slices {z0}:{z0 + depth} outside FOV {fov_name}")
        out[t, n_in:, z0 : z0 + depth] = pred
        if self.write_input and n_in:
            src = self._input_plate[fov_name]["0"]
            names = self._input_plate.channel_names
            for c, ch in enumerate(self._input_channels):
                out[t, c, z0 : z0 + depth] = src[t, names.index(ch), z0 : z0 + depth]

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Close the plate and move it to ``output_store``."""
        self._close()
        if self._tmp is not None:
            try:
                replace_path(self._tmp, self._store_path, self.overwrite)
            finally:
                remove_path(self._tmp)
                self._tmp = None
            _logger.info("Wrote predictions to %s", self.output_store)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Remove the half-written temporary plate."""
        self._close()
        if self._tmp is not None:
            remove_path(self._tmp)
            self._tmp = None

    def _close(self) -> None:
        for plate in (self._plate, self._input_plate):
            if plate is not None:
                plate.close()
        self._plate = self._input_plate = None
