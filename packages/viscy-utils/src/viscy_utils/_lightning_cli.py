"""The LightningCLI behind ``viscy fit/validate/test/predict/export`` (imports lightning)."""

from __future__ import annotations

import warnings
from typing import Any

from jsonargparse import lazy_instance  # noqa: F401  (handy in user configs)
from lightning.pytorch.cli import LightningCLI

from viscy_utils.trainer import VisCyTrainer


class VisCyCLI(LightningCLI):
    """``LightningCLI`` taking any LightningModule / LightningDataModule by ``class_path``.

    Defaults: trainer class :class:`~viscy_utils.trainer.VisCyTrainer`,
    subclass mode for model and data, the parsed config saved next to the logs
    (overwriting an earlier copy), and an extra ``export`` subcommand.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trainer_class", VisCyTrainer)
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(*args, **kwargs)

    def before_predict(self) -> None:
        """Give embedding writers the parsed config, to store it as provenance."""
        config = self.config.get(self.subcommand, self.config)
        text = self._parser(self.subcommand).dump(config, skip_none=False)
        for callback in self.trainer.callbacks:
            if hasattr(callback, "config_yaml"):
                callback.config_yaml = text

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands plus ``export``."""
        return {**LightningCLI.subcommands(), "export": {"model", "datamodule"}}


def run_cli(argv: list[str]) -> int:
    """Run one LightningCLI subcommand (``argv[0]``) with ``base:`` configs composed."""
    with warnings.catch_warnings():
        # argv is sys.argv after config composition, not a second set of arguments
        warnings.filterwarnings("ignore", message=".*not recommended to provide both args")
        VisCyCLI(args=argv)
    return 0
