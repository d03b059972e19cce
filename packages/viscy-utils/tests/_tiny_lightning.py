"""A tiny LightningModule / LightningDataModule over a real plate, for CLI and writer tests.

Importable as ``_tiny_lightning`` when this folder is on ``sys.path`` (the subprocess
tests set PYTHONPATH), so YAML configs can name the classes by ``class_path``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule, LightningModule
from torch.utils.data import DataLoader, Dataset


class _PatchDataset(Dataset):
    def __init__(self, patches: torch.Tensor, index: list[tuple[str, int, int]]) -> None:
        self.patches = patches
        self.index = index

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, i: int) -> dict:
        fov_name, t, z = self.index[i]
        return {"source": self.patches[i], "index": {"fov_name": fov_name, "t": t, "z": z}}


class TinyPlateDataModule(LightningDataModule):
    """Whole (C=1) Z stacks at every t of every FOV of a plate, as float tensors."""

    def __init__(
        self, data_path: str, source_channel: str = "Phase3D", batch_size: int = 2
    ) -> None:
        super().__init__()
        self.data_path = data_path
        self.source_channel = source_channel
        self.target_channel = [source_channel]
        self.batch_size = batch_size
        self.z_window_size: int | None = None

    def setup(self, stage: str) -> None:
        from iohub.ngff import open_ome_zarr

        patches, index = [], []
        with open_ome_zarr(self.data_path, layout="hcs", mode="r") as plate:
            if self.source_channel not in plate.channel_names:
                raise ValueError(f"{self.source_channel!r} not in {self.data_path}")
            c = plate.channel_names.index(self.source_channel)
            for name, pos in plate.positions():
                data = np.asarray(pos["0"][:, c : c + 1]).astype(np.float32)
                self.z_window_size = data.shape[2]
                for t in range(data.shape[0]):
                    patches.append(torch.from_numpy(data[t] / 1000.0))
                    index.append((name, t, 0))
        self.dataset = _PatchDataset(torch.stack(patches), index)

    def _loader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()


class TinyRegressor(LightningModule):
    """A 1x1x1 convolution predicting its input; records how many steps it trained."""

    def __init__(self, lr: float = 1e-3, marker_path: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.conv = torch.nn.Conv3d(1, 1, kernel_size=1)
        self.example_input_array = torch.zeros(1, 1, 2, 16, 16)
        self.steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(self(batch["source"]), batch["source"])
        self.log("loss/train", loss, batch_size=len(batch["source"]))
        self.steps += 1
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss = torch.nn.functional.mse_loss(self(batch["source"]), batch["source"])
        self.log("loss/val", loss, batch_size=len(batch["source"]))

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self(batch["source"])

    def on_train_end(self) -> None:
        if self.hparams.marker_path:
            Path(self.hparams.marker_path).write_text(f"{self.steps} {self.hparams.lr}")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class TinyTranslator(LightningModule):
    """Predicts target channels from source channels with a 1x1x1 convolution.

    Works on ``viscy_data.HCSDataModule`` batches (``source``, ``target``, ``index``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        lr: float = 1e-3,
        marker_path: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.conv = torch.nn.Conv3d(in_channels, out_channels, kernel_size=1)
        self.example_input_array = torch.zeros(1, in_channels, 1, 16, 16)
        self.steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def _loss(self, batch: dict) -> torch.Tensor:
        return torch.nn.functional.mse_loss(self(batch["source"]), batch["target"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("loss/train", loss, batch_size=len(batch["source"]))
        self.steps += 1
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("loss/val", self._loss(batch), batch_size=len(batch["source"]))

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self(batch["source"])

    def on_train_end(self) -> None:
        if self.hparams.marker_path:
            Path(self.hparams.marker_path).write_text(f"{self.steps} {self.hparams.lr}")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
