"""Lightning DataModule for DynaCLR training over several experiments.

Composes :class:`~dynaclr.experiment.ExperimentRegistry` (from YAML),
:class:`~dynaclr.index.MultiExperimentIndex`,
:class:`~dynaclr.dataset.MultiExperimentTripletDataset`,
:class:`viscy_data.sampler.FlexibleBatchSampler` (the training ``batch_sampler``) and
:class:`viscy_data.channel_dropout.ChannelDropout` (applied on device after the transforms,
in training only). Train and validation sets are whole experiments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

from lightning.pytorch import LightningDataModule
from monai.transforms import MapTransform
from torch.utils.data import BatchSampler

from dynaclr.dataset import MultiExperimentTripletDataset
from dynaclr.experiment import ExperimentRegistry
from dynaclr.index import MultiExperimentIndex
from viscy_data import ChannelWiseBatchTransform, DeviceTransformMixin
from viscy_data.channel_dropout import ChannelDropout
from viscy_data.loading import identity_collate, thread_data_loader
from viscy_data.sampler import FlexibleBatchSampler

__all__ = ["MultiExperimentDataModule"]

_log = logging.getLogger(__name__)
_TRIPLET_KEYS = ("anchor", "positive", "negative")


class MultiExperimentDataModule(DeviceTransformMixin, LightningDataModule):
    """Multi-experiment triplet batches with composable sampling, for Lightning CLI.

    Parameters
    ----------
    experiments_yaml : str
        Experiments YAML read by :meth:`ExperimentRegistry.from_yaml` (it also sets
        ``training_channels``).
    val_experiments : Sequence[str]
        Names of the experiments used for validation only; the others train.
    z_range : tuple[int, int] | None
        ``[start, stop)`` Z slices; ``None``: all slices (equal depth required).
    yx_patch_size : tuple[int, int]
        YX size read around each cell (room for augmentation).
    final_yx_patch_size : tuple[int, int]
        YX size after the final center crop (the model's input).
    tau_range : tuple[float, float]
        ``(min_hours, max_hours)`` between anchor and positive.
    tau_decay_rate : float
        Preference for small offsets (exponential decay; 0 is uniform).
    batch_size : int
        Anchors per batch.
    num_workers : int
        Thread workers of the ThreadDataLoader.
    experiment_aware : bool
        Every training batch from a single experiment.
    condition_balanced : bool
        Balance conditions within each training batch (``condition_ratio``).
    leaky : float
        Fraction of an experiment-aware batch drawn from the other experiments.
    temporal_enrichment : bool
        Concentrate each batch around a focal hours-post-infection.
    temporal_window_hours : float
        Half-width of the focal window.
    temporal_global_fraction : float
        Fraction of a time-enriched batch drawn from all times.
    experiment_weights : dict[str, float] | None
        Relative probability of each training experiment per batch (``None``: by size).
    condition_ratio : dict[str, float] | None
        Target share of each condition in a batch (``None``: equal).
    channel_dropout_channels : Sequence[int]
        Input channels (positions in the registry's ``active_channels``) that may be dropped.
    channel_dropout_prob : float
        Probability of dropping each of those channels per sample (training only).
    normalizations : list[MapTransform] | None
        Dictionary transforms run on device on every batch (keys: channel names).
    augmentations : list[MapTransform] | None
        Dictionary transforms run after the normalizations, in training (and in validation
        with ``augment_validation``).
    augment_validation : bool
        Also augment validation batches.
    hcl_beta : float
        Hard-negative concentration of the loss, recorded here for the config's overview;
        the loss itself is set on the model (``NTXentHCL(beta=...)``).
    return_negative : bool
        Also return an explicit negative per anchor (triplet losses).
    val_batches_per_epoch : int | None
        Cap on validation batches (``None``: all validation anchors once).
    cache_pool_bytes : int | None
        Decoded-chunk cache per reader (``None``: the reader's default; 0 disables).
    seed : int
        Seed of the sampler and of the datasets' generators.
    include_wells : list[str] | None
        Only these wells (``"A/1"``) of every experiment.
    exclude_fovs : list[str] | None
        FOVs (``"A/1/0"``) to leave out of every experiment.
    pin_memory : bool
        Pin host memory of batches.
    prefetch_factor : int | None
        Batches prefetched per worker (``num_workers > 0``).
    persistent_workers : bool
        Keep workers alive across epochs (``num_workers > 0``).
    predict_experiments : list[str] | None
        Experiments embedded by ``predict`` (``None``: all of the YAML). Every cell-timepoint
        of them is predicted once, in order, with the channels mapped as in training (the
        YAML's ``training_channels`` over all its experiments); the batch ``index`` carries
        ``experiment, condition, well_name, fov_name, track_id, t, hours_post_infection``
        and the other track columns for the embedding writer.
    """

    def __init__(
        self,
        experiments_yaml: str,
        val_experiments: Sequence[str] = (),
        z_range: tuple[int, int] | None = None,
        yx_patch_size: tuple[int, int] = (256, 256),
        final_yx_patch_size: tuple[int, int] = (160, 160),
        tau_range: tuple[float, float] = (0.5, 2.0),
        tau_decay_rate: float = 2.0,
        batch_size: int = 128,
        num_workers: int = 1,
        experiment_aware: bool = True,
        condition_balanced: bool = True,
        leaky: float = 0.0,
        temporal_enrichment: bool = False,
        temporal_window_hours: float = 2.0,
        temporal_global_fraction: float = 0.3,
        experiment_weights: dict[str, float] | None = None,
        condition_ratio: dict[str, float] | None = None,
        channel_dropout_channels: Sequence[int] = (1,),
        channel_dropout_prob: float = 0.5,
        normalizations: list[MapTransform] | None = None,
        augmentations: list[MapTransform] | None = None,
        augment_validation: bool = False,
        hcl_beta: float = 0.5,
        return_negative: bool = False,
        val_batches_per_epoch: int | None = None,
        cache_pool_bytes: int | None = None,
        seed: int = 0,
        include_wells: list[str] | None = None,
        exclude_fovs: list[str] | None = None,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        predict_experiments: list[str] | None = None,
    ) -> None:
        super().__init__()
        if any(f > p for f, p in zip(final_yx_patch_size, yx_patch_size, strict=True)):
            raise ValueError(
                f"final_yx_patch_size {tuple(final_yx_patch_size)} exceeds "
                f"yx_patch_size {tuple(yx_patch_size)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.experiments_yaml = str(experiments_yaml)
        self.val_experiments = [str(v) for v in val_experiments]
        self.z_range = None if z_range is None else (int(z_range[0]), int(z_range[1]))
        self.yx_patch_size = (int(yx_patch_size[0]), int(yx_patch_size[1]))
        self.final_yx_patch_size = (int(final_yx_patch_size[0]), int(final_yx_patch_size[1]))
        self.tau_range = (float(tau_range[0]), float(tau_range[1]))
        self.tau_decay_rate = float(tau_decay_rate)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.experiment_aware = bool(experiment_aware)
        self.condition_balanced = bool(condition_balanced)
        self.leaky = float(leaky)
        self.temporal_enrichment = bool(temporal_enrichment)
        self.temporal_window_hours = float(temporal_window_hours)
        self.temporal_global_fraction = float(temporal_global_fraction)
        self.experiment_weights = None if experiment_weights is None else dict(experiment_weights)
        self.condition_ratio = None if condition_ratio is None else dict(condition_ratio)
        self.channel_dropout_channels = [int(c) for c in channel_dropout_channels]
        self.channel_dropout_prob = float(channel_dropout_prob)
        self.channel_dropout = ChannelDropout(
            self.channel_dropout_channels, self.channel_dropout_prob
        )
        self.normalizations = list(normalizations or [])
        self.augmentations = list(augmentations or [])
        self.augment_validation = bool(augment_validation)
        self.hcl_beta = float(hcl_beta)
        self.return_negative = bool(return_negative)
        self.val_batches_per_epoch = val_batches_per_epoch
        self.cache_pool_bytes = cache_pool_bytes
        self.seed = int(seed)
        self.include_wells = include_wells
        self.exclude_fovs = exclude_fovs
        self.pin_memory = bool(pin_memory)
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = bool(persistent_workers)
        self.registry: ExperimentRegistry | None = None
        self.train_dataset: MultiExperimentTripletDataset | None = None
        self.val_dataset: MultiExperimentTripletDataset | None = None
        self.predict_experiments = (
            None if predict_experiments is None else [str(e) for e in predict_experiments]
        )
        self.predict_dataset: MultiExperimentTripletDataset | None = None

    # ------------------------------------------------------------------------------ setup
    @property
    def channel_names(self) -> list[str]:
        """Model input channels (the registry's ``active_channels``), after ``setup``."""
        if self.registry is None:
            raise RuntimeError("call setup() first")
        return list(self.registry.active_channels)

    def _split(self, registry: ExperimentRegistry) -> tuple[list[str], list[str]]:
        unknown = [v for v in self.val_experiments if v not in registry.names]
        if unknown:
            raise ValueError(
                f"val_experiments {unknown} not in {self.experiments_yaml} "
                f"(experiments: {registry.names})"
            )
        train = [n for n in registry.names if n not in set(self.val_experiments)]
        if not train:
            raise ValueError(
                f"every experiment of {self.experiments_yaml} is in val_experiments: none to train"
            )
        return train, list(self.val_experiments)

    def _dataset(
        self, registry: ExperimentRegistry, seed: int, predict: bool = False
    ) -> MultiExperimentTripletDataset:
        index = MultiExperimentIndex(
            registry,
            yx_patch_size=self.yx_patch_size,
            tau_range_hours=self.tau_range,
            tau_decay_rate=self.tau_decay_rate,
            include_wells=self.include_wells,
            exclude_fovs=self.exclude_fovs,
        )
        if predict:
            if len(index.tracks) == 0:
                raise ValueError(f"experiments {registry.names}: no cell to predict")
        elif len(index.valid_anchors) == 0:
            raise ValueError(
                f"experiments {registry.names}: no cell has a positive within tau_range "
                f"{self.tau_range} h; widen tau_range or check the tracks"
            )
        return MultiExperimentTripletDataset(
            index,
            z_range=self.z_range,
            return_negative=self.return_negative,
            seed=seed,
            cache_bytes=self.cache_pool_bytes,
            # plates' dtype through the loader (half the bytes for uint16); float on device
            float_output=False,
            predict=predict,
        )

    def setup(self, stage: str | None = None) -> None:
        """Read the registry, split by experiment and index train / val (/ predict)
        experiments."""
        if stage not in (None, "fit", "validate", "predict"):
            raise NotImplementedError(
                f"MultiExperimentDataModule supports fit, validate and predict, not {stage!r}"
            )
        registry = ExperimentRegistry.from_yaml(self.experiments_yaml)
        registry.validate_stores()
        n_channels = len(registry.active_channels)
        bad = [c for c in self.channel_dropout_channels if not -n_channels <= c < n_channels]
        if bad:
            raise ValueError(
                f"channel_dropout_channels {bad} out of range for the {n_channels} training "
                f"channels {registry.active_channels}"
            )
        self.registry = registry
        if stage == "predict":
            names = registry.names if self.predict_experiments is None else self.predict_experiments
            if self.predict_dataset is None:
                self.predict_dataset = self._dataset(registry.subset(names), self.seed, True)
            self.predict_dataset.norm_stats.require_for(self.normalizations)
            self._compose_device_transforms()
            return
        train, val = self._split(registry)
        if stage in (None, "fit") and self.train_dataset is None:
            self.train_dataset = self._dataset(registry.subset(train), self.seed)
        if val and self.val_dataset is None:
            self.val_dataset = self._dataset(registry.subset(val), self.seed + 1)
        # normalizations need statistics in every FOV: fail here, not on the GPU
        for dataset in (self.train_dataset, self.val_dataset):
            if dataset is not None:
                dataset.norm_stats.require_for(self.normalizations + self.augmentations)
        self._compose_device_transforms()

    # ------------------------------------------------------------------------------ loaders
    def _distributed(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader(self, dataset: MultiExperimentTripletDataset, **kwargs: Any) -> Any:
        return thread_data_loader(
            dataset,
            collate_fn=identity_collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            prefetch_factor=self.prefetch_factor,
            **kwargs,
        )

    def train_sampler(self) -> FlexibleBatchSampler:
        """The training batch sampler, sharded for the trainer's ranks."""
        if self.train_dataset is None:
            raise RuntimeError("call setup('fit') first")
        num_replicas, rank = self._distributed()
        sampler = FlexibleBatchSampler(
            self.train_dataset.index.valid_anchors,
            batch_size=self.batch_size,
            experiment_aware=self.experiment_aware,
            condition_balanced=self.condition_balanced,
            leaky=self.leaky,
            experiment_weights=self.experiment_weights,
            condition_ratio=self.condition_ratio,
            temporal_enrichment=self.temporal_enrichment,
            temporal_window_hours=self.temporal_window_hours,
            temporal_global_fraction=self.temporal_global_fraction,
            num_replicas=num_replicas,
            rank=rank,
            seed=self.seed,
            drop_last=True,
        )
        if len(sampler) == 0:
            raise ValueError(
                f"{len(self.train_dataset)} training anchors over {num_replicas} rank(s) do not "
                f"fill one batch of batch_size={self.batch_size}"
            )
        return sampler

    def train_dataloader(self) -> Any:
        self._refuse_lightning_sampler()
        return self._loader(self.train_dataset, batch_sampler=self.train_sampler())

    def _refuse_lightning_sampler(self) -> None:
        from viscy_data.distributed import uses_lightning_sampler

        if uses_lightning_sampler(getattr(self, "trainer", None)):
            raise ValueError(
                "MultiExperimentDataModule shards its batch plans across ranks itself "
                "(FlexibleBatchSampler); Lightning cannot replace that sampler. Set the "
                "trainer's use_distributed_sampler=False (--trainer.use_distributed_sampler "
                "false), as examples/configs/multi_experiment_fit.yml does."
            )

    def val_dataloader(self) -> Any:
        if self.val_dataset is None:
            return []
        self._refuse_lightning_sampler()
        # plain sequential batches over the validation anchors, sharded across ranks
        num_replicas, rank = self._distributed()
        n = len(self.val_dataset)
        indices = list(range(rank, n - n % num_replicas if n >= num_replicas else n, num_replicas))
        if self.val_batches_per_epoch is not None:
            indices = indices[: self.val_batches_per_epoch * self.batch_size]
        batches = [
            indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)
        ]
        return self._loader(self.val_dataset, batch_sampler=batches)

    def predict_dataloader(self) -> Any:
        """Every cell-timepoint of the predict experiments once, in order, sharded by rank."""
        if self.predict_dataset is None:
            raise RuntimeError("call setup('predict') first")
        num_replicas, rank = self._distributed()
        n = len(self.predict_dataset)
        per_rank = -(-n // num_replicas)
        indices = range(rank * per_rank, min(n, (rank + 1) * per_rank))
        # a BatchSampler object (not a list): Lightning wraps predict batch samplers
        batches = BatchSampler(indices, batch_size=self.batch_size, drop_last=False)
        return self._loader(self.predict_dataset, batch_sampler=batches)

    # ------------------------------------------------------------------------------ device
    def transfer_transforms(self, stage: str | None | Literal["current"] = "current") -> list:
        """Transforms run on device in ``stage`` (default: the current one): the
        normalizations, then the augmentations when ``_augmenting``."""
        transforms: list[Callable] = list(self.normalizations)
        if self._augmenting(stage):
            transforms += self.augmentations
        return transforms

    def _build_device_transform(self, stage: str | None) -> ChannelWiseBatchTransform:
        """Normalize (+ augment) channel by channel, center-crop, then channel dropout.

        Channel dropout runs last (after the scatter/gather transform chain) and only while
        training.
        """
        dropout = None
        if stage == "train":
            dropout = self.channel_dropout.train(True)
        return ChannelWiseBatchTransform(
            self.transfer_transforms(stage),
            self.channel_names,
            _TRIPLET_KEYS,
            self.final_yx_patch_size,
            after=dropout,
        )
