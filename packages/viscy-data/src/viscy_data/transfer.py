"""The device-transfer skeleton every DataModule of viscy-data shares.

Lightning moves a batch to the device, then calls ``on_after_batch_transfer``; there the
DataModule runs the transform of the current stage (normalize, augment, crop on the GPU).
:class:`DeviceTransformMixin` holds that hook once: it finds the stage from the trainer,
decides whether augmentations run (:meth:`~DeviceTransformMixin._augmenting`) and applies
the stage's transform, which a subclass builds in :meth:`~DeviceTransformMixin.
_build_device_transform` and which is composed once per stage (at the end of ``setup``, or
on first use). :class:`StoredTransforms` adds the four transform properties
(CPU / GPU x train / val) of the GPU DataModules, composed once from lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from torch import Tensor

__all__ = ["DEVICE_STAGES", "DeviceTransformMixin", "StoredTransforms", "compose", "trainer_stage"]

Stage = Literal["train", "val", "sanity", "test", "predict"]
#: stages with their own device transform; ``None`` is "no trainer attached"
DEVICE_STAGES: tuple[Stage | None, ...] = (None, "train", "val", "sanity", "test", "predict")


def compose(transforms: Sequence[Callable] | Callable | None) -> Callable | None:
    """A MONAI ``Compose`` of a transform list; None or an empty list gives None (identity).

    Parameters
    ----------
    transforms : sequence of callables, a callable, or None
        A single callable is returned as is.

    Returns
    -------
    callable or None
    """
    if transforms is None:
        return None
    if callable(transforms) and not isinstance(transforms, Sequence):
        return transforms
    transforms = list(transforms)
    if not transforms:
        return None
    from monai.transforms import Compose

    return Compose(transforms)


def trainer_stage(trainer: Any) -> Stage | None:
    """The stage a Lightning trainer is running: ``"sanity"`` (the validation sanity check),
    ``"train"``, ``"val"``, ``"test"``, ``"predict"``, or None without a trainer or stage.

    Flags a trainer-like object lacks count as False.

    Parameters
    ----------
    trainer : Any
        A Lightning ``Trainer`` (or an object with its ``sanity_checking``, ``training``,
        ``validating``, ``testing`` and ``predicting`` flags), or None.
    """
    if trainer is None:
        return None
    for flag, stage in (
        ("sanity_checking", "sanity"),
        ("training", "train"),
        ("validating", "val"),
        ("testing", "test"),
        ("predicting", "predict"),
    ):
        if getattr(trainer, flag, False):
            return stage  # type: ignore[return-value]
    return None


class DeviceTransformMixin:
    """``on_after_batch_transfer`` for a LightningDataModule, with one transform per stage.

    Subclasses override :meth:`_build_device_transform` (the default runs
    ``train_gpu_transforms`` in training and ``val_gpu_transforms`` in validation and the
    sanity check) and may override :meth:`_prepare_batch` (run before the transform in every
    stage, e.g. integer to float). Call :meth:`_compose_device_transforms` at the end of
    ``setup`` when the transforms depend on what ``setup`` found (e.g. channel names);
    otherwise they are composed on first use. Tensors (``example_input_array``) pass through.

    Augmentations run in training, in validation only when ``augment_validation`` is True,
    never during the sanity check, test or predict (:meth:`_augmenting`).
    """

    augment_validation: bool = False

    def _stage(self) -> Stage | None:
        return trainer_stage(getattr(self, "trainer", None))

    def _augmenting(self, stage: Stage | None | Literal["current"] = "current") -> bool:
        """Whether augmentations run in ``stage`` (default: the trainer's current stage)."""
        if stage == "current":
            stage = self._stage()
        return stage == "train" or (stage == "val" and bool(self.augment_validation))

    def _build_device_transform(self, stage: Stage | None) -> Callable[[Any], Any] | None:
        """The transform applied to batches of ``stage`` on the device (None: identity)."""
        if stage == "train":
            return getattr(self, "train_gpu_transforms", None)
        if stage in ("val", "sanity"):
            return getattr(self, "val_gpu_transforms", None)
        return None

    def _compose_device_transforms(self) -> None:
        """Build the device transform of every stage once."""
        self._device_transforms = {s: self._build_device_transform(s) for s in DEVICE_STAGES}

    def device_transform(
        self, stage: Stage | None | Literal["current"] = "current"
    ) -> Callable[[Any], Any] | None:
        """The device transform of ``stage`` (default: the trainer's current stage)."""
        if stage == "current":
            stage = self._stage()
        if getattr(self, "_device_transforms", None) is None:
            self._compose_device_transforms()
        return self._device_transforms.get(stage)

    def _prepare_batch(self, batch: Any) -> Any:
        """Run on every batch before the stage's transform; identity by default."""
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply the current stage's device transform to a batch already on the device."""
        if isinstance(batch, Tensor):  # example_input_array
            return batch
        batch = self._prepare_batch(batch)
        transform = self.device_transform()
        return batch if transform is None else transform(batch)


class StoredTransforms(DeviceTransformMixin):
    """The four transform properties of a GPU DataModule, stored composed.

    :meth:`_store_transforms` composes the CPU (per sample, in workers) and GPU (per batch, on
    the device) transforms of training and validation once; the properties return them.
    """

    def _store_transforms(
        self,
        train_cpu: Sequence[Callable] | Callable | None,
        val_cpu: Sequence[Callable] | Callable | None,
        train_gpu: Sequence[Callable] | Callable | None,
        val_gpu: Sequence[Callable] | Callable | None,
    ) -> None:
        self._train_cpu_transforms = compose(train_cpu)
        self._val_cpu_transforms = compose(val_cpu)
        self._train_gpu_transforms = compose(train_gpu)
        self._val_gpu_transforms = compose(val_gpu)
        self._device_transforms = None  # recomposed from the new GPU transforms

    @property
    def train_cpu_transforms(self) -> Callable | None:
        """Per-sample transform applied in the training workers."""
        return self._train_cpu_transforms

    @property
    def val_cpu_transforms(self) -> Callable | None:
        """Per-sample transform applied in the validation workers."""
        return self._val_cpu_transforms

    @property
    def train_gpu_transforms(self) -> Callable | None:
        """Batch transform applied on the device during training."""
        return self._train_gpu_transforms

    @property
    def val_gpu_transforms(self) -> Callable | None:
        """Batch transform applied on the device during validation and the sanity check."""
        return self._val_gpu_transforms
