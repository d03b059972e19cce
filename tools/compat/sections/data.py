"""viscy-data: DataModules, datasets and samplers against the 0.1.0 release.

Both sides read the same files, written by our synthetic generator (``_data_files.py``):
an HCS plate (NGFF 0.4, tracks, foreground masks), CTMC-v1 and segmentation plates, an
annotation CSV, cell-division ``.npy`` series and a LIVECell-style TIFF/COCO set. Each case
builds one DataModule / dataset / sampler with 0.1.0 arguments and records the batch
structure of every loader (keys, shapes, dtypes, batch sizes, number of batches, last batch),
the values of deterministic samples, and error types for invalid inputs. ``ours`` runs the
same probe and compares. Each case names the spec entries it ``covers``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAMES = [
    "Phase3D", "GFP", "raw GFP EX488 EM525-45", "BF", "BF_x", "BFP", "DIC", "DIC_1", "dic",
    "Retardance", "Orientation", "nuclei_prediction", "Phase3D_prediction", "Virtual",
    "raw mCherry EX561 EM600-37", "Cy5 EX640 EM690-50", "raw GFP EX488EM525",
    "raw GFP/mCherry EX488 EM525", "raw GFP EX 488 EM525", "raw X EM600-37 EX561",
    "raw BF EX488 EM525", "",
]  # fmt: skip

_HCS = "viscy_data.HCSDataModule"
_GPU = "viscy_data.GPUTransformDataModule"
_PARSE = "viscy_data.channel_utils.parse_channel_name"
_FBS = "viscy_data.FlexibleBatchSampler"
_SDS = "viscy_data.ShardedDistributedSampler"


def _case(name, kind, covers, **kw):
    return {"name": name, "kind": kind, "covers": covers, **kw}


CASES = (
    [
        _case(f"parse_channel_name {n!r}", "channel", [_PARSE], arg=n, fixed="missing")
        for n in NAMES
    ]
    + [
        _case("FlexibleBatchSampler epoch/iter", "sampler_epoch", [_FBS], fixed="no advance"),
        _case("FlexibleBatchSampler DDP dealing", "sampler_ddp", [_FBS],
              deviation="equal batch counts per rank (COMPATIBILITY.md)"),
        _case("ShardedDistributedSampler ranks", "sharded", [_SDS]),
        # ---- HCS
        _case("HCS fit loaders", "dm", [_HCS, "viscy_data.HCSStackIndex", "viscy_data.Sample",
              "viscy_data.SampleMeta"], dm="hcs", stage="fit", dtype_deviation=True,
              meta_deviation=True),
        _case("HCS num_samples=2 batch_size=4", "dm", [_HCS], dm="hcs_samples", stage="fit",
              dtype_deviation=True, meta_deviation=True, loaders=["train"],
              fixed="8 patches per step"),
        _case("HCS num_samples=2 batch_size=3 error", "dm", [_HCS], dm="hcs_samples",
              stage="fit", args={"batch_size": 3}, expect_error=True),
        _case("HCS target_2d", "dm_gpu", [_HCS], dm="hcs", stage="fit",
              args={"target_2d": True}, meta_deviation=True),
        _case("HCS gpu_augmentations source/target + fg_mask", "dm_gpu", [_HCS], dm="hcs_gpu",
              stage="fit", meta_deviation=True,
              fixed="crash on source/target keys; mask not moved"),
        _case("HCS predict", "dm", [_HCS, "viscy_data.SlidingWindowDataset"], dm="hcs",
              stage="predict", values=["predict"], dtype_deviation=True, meta_deviation=True,
              extra_ok=["target"]),
        _case("HCS setup('unknown')", "dm", [_HCS], dm="hcs", stage="unknown", expect_error=True),
        _case("HCS bad channel", "dm", [_HCS], dm="hcs", stage="fit",
              args={"source_channel": "nope"}, expect_error=True),
        _case("SlidingWindowDataset items", "sliding",
              ["viscy_data.SlidingWindowDataset", "viscy_data.ChannelMap"],
              dtype_deviation=True, meta_deviation=True),
        # ---- triplet family
        # batch_size 2: 0.1.0's random FOV split can leave 3 training anchors (no full batch of 5)
        _case("TripletDataModule fit batch structure", "dm",
              ["viscy_data.TripletDataModule", "viscy_data.TripletSample"],
              dm="triplet", stage="fit", args={"batch_size": 2}, counts=False,
              meta_deviation=True),
        _case("TripletDataModule predict (all cells)", "dm", ["viscy_data.TripletDataModule"],
              dm="triplet", stage="predict", meta_deviation=True, cells=True,
              fixed="border cells kept; centroids rounded, not truncated"),
        _case("TripletDataModule setup('unknown')", "dm", ["viscy_data.TripletDataModule"],
              dm="triplet", stage="unknown", expect_error=True),
        _case("TripletDataset anchors", "triplet_ds", ["viscy_data.TripletDataset"],
              meta_deviation=True, fixed="positives followed divisions into daughter tracks"),
        _case("CellDivisionTripletDataModule fit loaders", "dm",
              ["viscy_data.CellDivisionTripletDataModule", "viscy_data.CellDivisionTripletDataset"],
              dm="division", stage="fit", fixed="last partial training batch kept"),
        _case("CellDivisionTripletDataModule predict", "dm",
              ["viscy_data.CellDivisionTripletDataModule"], dm="division", stage="predict",
              extra_ok=["t"]),
        # ---- GPU-augmentation DataModules
        _case("CachedOmeZarrDataModule fit loaders", "dm",
              ["viscy_data.CachedOmeZarrDataModule", "viscy_data.CachedOmeZarrDataset", _GPU,
               "viscy_data.SelectWell"],
              dm="cached", stage="fit", meta_deviation=True, fixed="last partial batch dropped"),
        _case("MmappedDataModule fit loaders", "dm",
              ["viscy_data.MmappedDataModule", "viscy_data.MmappedDataset", _GPU],
              dm="mmap", stage="fit", meta_deviation=True, fixed="last partial batch dropped"),
        _case("LiveCellDataModule fit loaders", "dm",
              ["viscy_data.LiveCellDataModule", "viscy_data.LiveCellDataset", _GPU],
              dm="livecell", stage="fit", values=["val"], extra_ok=["target"],
              fixed="last partial batch dropped"),
        _case("LiveCellDataModule test", "dm",
              ["viscy_data.LiveCellDataModule", "viscy_data.LiveCellTestDataset"],
              dm="livecell", stage="test", values=["test"],
              fixed="labels/target instead of detections"),
        _case("CTMCv1DataModule fit loaders", "dm", ["viscy_data.CTMCv1DataModule", _GPU],
              dm="ctmc", stage="fit", values=["val"],
              values_deviation="0.1.0 validation after a training pass serves training volumes",
              fixed="last partial batch dropped; norm_meta in batches"),
        _case("CTMCv1DataModule setup('test')", "dm", ["viscy_data.CTMCv1DataModule"], dm="ctmc",
              stage="test", expect_error=True),
        # ---- classification, segmentation, combined
        _case("ClassificationDataModule fit loaders", "dm",
              ["viscy_data.ClassificationDataModule", "viscy_data.ClassificationDataset"],
              dm="cls", stage="fit", values=["val"],
              fixed="un-normalized, scalar labels; patch on the rounded centroid"),
        _case("ClassificationDataModule setup('unknown')", "dm",
              ["viscy_data.ClassificationDataModule"], dm="cls", stage="unknown",
              fixed="did nothing", expect_error=True),
        _case("ClassificationDataModule setup('test')", "dm",
              ["viscy_data.ClassificationDataModule"], dm="cls", stage="test", expect_error=True),
        _case("SegmentationDataModule test", "dm",
              ["viscy_data.SegmentationDataModule", "viscy_data.SegmentationDataset",
               "viscy_data.SegmentationSample"],
              dm="seg", stage="test", values=["test"], dtype_map={"int32": "int16"}),
        _case("ConcatDataModule of two HCS", "dm", ["viscy_data.ConcatDataModule"],
              dm="concat", stage="fit", dtype_deviation=True, meta_deviation=True),
        # compared as collated batches (0.1.0 yields lists of per-sample lists: ``raw_layout``);
        # no values: 0.1.0's children split their FOVs at random
        _case("CachedConcatDataModule of two cached", "dm", ["viscy_data.CachedConcatDataModule"],
              dm="cached_concat", stage="fit", counts=False, meta_deviation=True,
              collate_view=True, layout_deviation=True),
        _case("CachedConcatDataModule GPU transforms", "cached_concat_gpu",
              ["viscy_data.CachedConcatDataModule"],
              deviation="0.1.0 applies no GPU transforms and passes lists (COMPATIBILITY.md)"),
        _case("BatchedConcatDataModule of two HCS", "batched_concat",
              ["viscy_data.BatchedConcatDataModule", "viscy_data.BatchedConcatDataset"],
              dtype_deviation=True, meta_deviation=True,
              fixed="one merged batch; the first child's transforms on every part"),
        _case("ChannelDropout p=0 / p=1", "dropout", ["viscy_data.ChannelDropout"]),
        _case("read_norm_meta", "norm_meta", ["viscy_data.read_norm_meta",
              "viscy_data.ChannelNormStats", "viscy_data.LevelNormStats"]),
        _case("CombinedDataModule of two HCS", "dm", ["viscy_data.CombinedDataModule",
              "viscy_data.CombineMode"], dm="combined", stage="fit", dtype_deviation=True,
              meta_deviation=True),
    ]
)  # fmt: skip


# ------------------------------------------------------------------ inputs (both sides)


def _d() -> Path:
    import _data_files

    return _data_files.data_dir()


def _hcs(**kw):
    from viscy_data import HCSDataModule

    args = dict(
        data_path=str(_d() / "plate.zarr"), source_channel="Phase3D", target_channel="GFP",
        z_window_size=5, batch_size=5, num_workers=0, yx_patch_size=(64, 64), split_ratio=0.5,
        pin_memory=False,
    )  # fmt: skip
    args.update(kw)
    return HCSDataModule(**args)


def _make(name: str, args: dict):
    d = _d()
    if name == "hcs":
        return _hcs(**args)
    if name == "hcs_samples":
        from monai.transforms import RandSpatialCropSamplesd

        crop = RandSpatialCropSamplesd(
            keys=["Phase3D", "GFP"], roi_size=(5, 32, 32), num_samples=2, random_size=False
        )
        return _hcs(**{"batch_size": 4, "yx_patch_size": (32, 32), "augmentations": [crop], **args})
    if name == "hcs_gpu":
        from monai.transforms import Flipd

        flip = Flipd(keys=["source", "target"], spatial_axis=-1)
        return _hcs(gpu_augmentations=[flip], val_gpu_augmentations=[flip], fg_mask_key="fg_mask",
                    **args)  # fmt: skip
    if name == "triplet":
        from viscy_data import TripletDataModule

        options = dict(z_range=(2, 6), initial_yx_patch_size=(32, 32),
                       final_yx_patch_size=(24, 24), batch_size=5, num_workers=0,
                       time_interval=1, split_ratio=0.5)  # fmt: skip
        options.update(args)
        return TripletDataModule(
            str(d / "plate.zarr"), str(d / "tracks"), ["Phase3D", "GFP"], **options
        )
    if name == "division":
        from viscy_data import CellDivisionTripletDataModule

        return CellDivisionTripletDataModule(
            str(d / "division"), ["bf", "h2b"], final_yx_patch_size=(32, 32), batch_size=3,
            num_workers=0, time_interval=1, split_ratio=0.5, **args,
        )  # fmt: skip
    empty4 = dict(train_cpu_transforms=[], val_cpu_transforms=[], train_gpu_transforms=[],
                  val_gpu_transforms=[])  # fmt: skip
    if name == "cached":
        from viscy_data import CachedOmeZarrDataModule

        return CachedOmeZarrDataModule(
            d / "plate.zarr", ["Phase3D", "GFP"], batch_size=5, num_workers=0, split_ratio=0.5,
            pin_memory=False, **empty4, **args,
        )  # fmt: skip
    if name == "mmap":
        import tempfile

        from viscy_data import MmappedDataModule

        return MmappedDataModule(
            d / "plate.zarr", ["Phase3D", "GFP"], batch_size=5, num_workers=0, split_ratio=0.5,
            preprocess_transforms=[], pin_memory=False, scratch_dir=Path(tempfile.mkdtemp()),
            **empty4, **args,
        )  # fmt: skip
    if name == "livecell":
        from viscy_data import LiveCellDataModule

        return LiveCellDataModule(
            d / "livecell", d / "livecell", d / "livecell_train.json", d / "livecell_val.json",
            d / "livecell_test.json", batch_size=2, num_workers=0, pin_memory=False,
            test_transforms=[], **empty4, **args,
        )  # fmt: skip
    if name == "ctmc":
        from viscy_data import CTMCv1DataModule

        return CTMCv1DataModule(d / "ctmc_train.zarr", d / "ctmc_val.zarr", [], [], [], [],
                                batch_size=5, num_workers=0, val_subsample_ratio=3,
                                pin_memory=False, **args)  # fmt: skip
    if name == "cls":
        from viscy_data import ClassificationDataModule

        return ClassificationDataModule(
            d / "plate.zarr", d / "annotations.csv", val_fovs=["B/1/1"], channel_name="Phase3D",
            z_range=(2, 6), train_exclude_timepoints=[], train_transforms=None,
            val_transforms=None, initial_yx_patch_size=(16, 16), batch_size=5, num_workers=0,
            **args,
        )  # fmt: skip
    if name == "seg":
        from viscy_data import SegmentationDataModule

        return SegmentationDataModule(d / "seg_pred.zarr", d / "seg_target.zarr", "pred",
                                      "target", 1, 1, batch_size=3, num_workers=0)  # fmt: skip
    if name == "cached_concat":
        from viscy_data import CachedConcatDataModule

        return CachedConcatDataModule([_make("cached", {}), _make("cached", {})])
    if name == "batched_concat":
        from viscy_data import BatchedConcatDataModule

        return BatchedConcatDataModule(
            [_hcs(), _hcs(source_channel="GFP", target_channel="Phase3D")]
        )
    if name in ("concat", "combined"):
        from viscy_data import CombinedDataModule, ConcatDataModule

        parts = [_hcs(), _hcs(source_channel="GFP", target_channel="Phase3D")]
        return ConcatDataModule(parts) if name == "concat" else CombinedDataModule(parts)
    raise KeyError(name)


# ------------------------------------------------------------------ observations


def _tree(value):
    """Keys, shapes and dtypes of a batch; other leaves become their type name."""
    import torch

    if isinstance(value, torch.Tensor):
        return f"T{tuple(value.shape)}:{str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, dict):
        return {str(k): _tree(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, str) for v in value):
            return f"list[str]x{len(value)}"
        return [_tree(v) for v in value]
    return type(value).__name__


def _size(batch):
    import torch

    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, (str, bytes, int, float)) or batch is None:
        return None
    items = batch.values() if isinstance(batch, dict) else batch
    for item in items if isinstance(items, (list, tuple)) else list(items):
        size = _size(item)
        if size is not None:
            return size
    return None


def _tensors(batch):
    """The tensors of a batch by key path (values to compare)."""
    import torch

    out = {}

    def walk(v, path):
        if isinstance(v, torch.Tensor):
            out[path] = v.detach().clone()
        elif isinstance(v, dict):
            for k, x in v.items():
                if "norm_meta" not in str(k):
                    walk(x, f"{path}/{k}")
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, f"{path}/{i}")

    walk(batch, "")
    return out


def _loaders(dm, stage, only=None):
    names = {"fit": ["train", "val"], "predict": ["predict"], "test": ["test"]}[stage]
    names = [n for n in names if n in (only or names)]
    out = {}
    for name in names:
        loader = getattr(dm, f"{name}_dataloader")()
        if isinstance(loader, list) and not loader:
            out[name] = "empty"
            continue
        out[name] = loader
    return out


def _observe_dm(case):
    dm = _make(case["dm"], case.get("args", {}))
    dm.setup(case["stage"])
    obs = {}
    for name, loader in _loaders(dm, case["stage"], case.get("loaders")).items():
        if loader == "empty":
            obs[name] = "empty"
            continue
        batches = list(loader)
        entry = {}
        if case.get("collate_view"):
            entry["raw_layout"] = sorted({type(b).__name__ for b in batches})
            batches = [_collated(b) for b in batches]
        sizes = [_size(b) for b in batches]
        entry["first"] = _tree(batches[0]) if batches else None
        if case.get("counts", True):  # False: 0.1.0 splits at random, counts vary per run
            entry.update(n_batches=len(batches), sizes=sizes, last=_tree(batches[-1]))
        if name in case.get("values", []) and batches:
            entry["values"] = _tensors(batches[0])
        if case.get("cells"):
            entry["cells"] = [c for b in batches for c in _cells(b["index"])]
        obs[name] = entry
    return obs


def _collated(batch):
    """A batch as one dict: lists of (lists of) sample dicts are stacked with torch's collate."""
    from torch.utils.data import default_collate

    if isinstance(batch, dict):
        return batch
    samples = []
    for item in batch:
        samples.extend(item if isinstance(item, (list, tuple)) else [item])
    return default_collate(
        [{k: v for k, v in s.items() if not k.endswith("norm_meta")} for s in samples]
    )


def _quiet_trainer():
    from lightning.pytorch import Trainer

    return Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False)  # fmt: skip


def _marking(key, value):
    """A transform that sets every voxel of ``key`` to ``value`` (tells the children apart)."""
    from monai.transforms import Lambdad

    return Lambdad(keys=[key], func=lambda x, v=value: x * 0 + v)


def _observe_batched_concat():
    """Loader parts, and after ``on_after_batch_transfer`` whose transforms marked each sample
    (child k's GPU augmentations set ``source`` to k)."""
    from viscy_data import BatchedConcatDataModule

    children = [
        _hcs(gpu_augmentations=[_marking("source", 1.0)],
             val_gpu_augmentations=[_marking("source", 1.0)]),
        _hcs(source_channel="GFP", target_channel="Phase3D",
             gpu_augmentations=[_marking("source", 2.0)],
             val_gpu_augmentations=[_marking("source", 2.0)]),
    ]  # fmt: skip
    dm = BatchedConcatDataModule(children)
    trainer = _quiet_trainer()
    dm.trainer = trainer
    dm.setup("fit")
    obs = {}
    for name, flag in (("train", "training"), ("val", "validating")):
        setattr(trainer, flag, True)
        batches = list(getattr(dm, f"{name}_dataloader")())
        parts = [p for b in batches for p in b]
        entry = {
            "n_batches": len(batches),
            "sizes": [sum(_size(p) for p in b) for b in batches],
            "part_keys": sorted({k for p in parts for k in p}),
            "part_dataset_idx": sorted({f"{type(p['_dataset_idx']).__name__}:"
                                        f"{p['_dataset_idx']}" for p in parts}),
        }  # fmt: skip
        own = True
        for i, batch in enumerate(batches):
            marks = [1.0 + p["_dataset_idx"] for p in batch for _ in range(_size(p))]
            out = dm.on_after_batch_transfer(batch, 0)
            if i == 0:
                entry["first_after_transfer"] = _tree(out)
            own &= out["source"][:, 0, 0, 0, 0].tolist() == marks
        entry["each_child_own_transforms"] = own
        setattr(trainer, flag, False)
        obs[name] = entry
    return obs


def _observe_cached_concat_gpu():
    """What the model gets from children with GPU transforms that mark ``Phase3D``."""
    from viscy_data import CachedConcatDataModule, CachedOmeZarrDataModule

    def child(value):
        mark = [_marking("Phase3D", value)]
        return CachedOmeZarrDataModule(
            _d() / "plate.zarr", ["Phase3D", "GFP"], batch_size=5, num_workers=0,
            split_ratio=0.5, pin_memory=False, train_cpu_transforms=[], val_cpu_transforms=[],
            train_gpu_transforms=mark, val_gpu_transforms=mark,
        )  # fmt: skip

    dm = CachedConcatDataModule([child(1.0), child(2.0)])
    trainer = _quiet_trainer()
    dm.trainer = trainer
    dm.setup("fit")
    trainer.training = True
    out = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    phase = _collated(out)["Phase3D"]
    return {"layout": type(out).__name__, "marks": sorted(set(phase[:, 0, 0, 0, 0].tolist()))}


def _observe_gpu(case):
    """Batches through ``on_after_batch_transfer`` as a Lightning fit would run it."""
    from lightning.pytorch import Trainer

    dm = _make(case["dm"], case.get("args", {}))
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    dm.trainer = trainer
    dm.setup("fit")
    obs = {}
    for name, flag in (("train", "training"), ("val", "validating")):
        setattr(trainer, flag, True)
        raw = next(iter(getattr(dm, f"{name}_dataloader")()))
        batch = dm.on_after_batch_transfer(raw, 0)
        entry = {"tree": _tree(batch)}
        # 0.1.0 splits FOVs at random: no values to compare, only the mask's alignment
        if name == "val" and "fg_mask" in batch and "target" in batch:
            # the mask moves with the target: inside the mask the target is bright
            import torch

            mask = batch["fg_mask"].bool()
            ratio = float(batch["target"][mask].mean() / batch["target"][~mask].mean())
            entry["mask_aligned"] = ratio > 1.3  # a mask left unflipped gives ~1
            entry["mask_shape"] = tuple(batch["fg_mask"].shape)
            entry["mask_any"] = bool(torch.any(mask))
        obs[name] = entry
    return obs


def _observe_sliding():
    from iohub.ngff import open_ome_zarr

    from viscy_data import SlidingWindowDataset

    plate = open_ome_zarr(_d() / "plate.zarr", mode="r")
    positions = [pos for _, pos in plate.positions()][:2]
    ds = SlidingWindowDataset(positions, {"source": ["Phase3D"], "target": ["GFP"]}, 5)
    items = [ds[i] for i in (0, 1, len(ds) - 1)]
    values = [_tensors({k: it[k] for k in ("source", "target")}) for it in items]
    return {"len": len(ds), "tree": _tree(items[0]), "values": values}


def _cells(index):
    """``(fov, track_id, t)`` of each cell of a predict batch's ``index``, whichever layout
    (0.1.0: a list of per-cell dicts; ours: a dict of per-key lists / tensors)."""
    if isinstance(index, dict):
        columns = [index[k] for k in ("fov_name", "track_id", "t")]
        rows = zip(*(c.tolist() if hasattr(c, "tolist") else c for c in columns), strict=True)
    else:
        rows = ((c["fov_name"], c["track_id"], c["t"]) for c in index)
    return [(str(f).strip("/"), int(i), int(t)) for f, i, t in rows]


def _observe_triplet_ds():
    import inspect

    import pandas as pd
    from iohub.ngff import open_ome_zarr

    from viscy_data import TripletDataset

    # 0.1.0's dataset reads through the positions' tensorstore arrays, as its DataModule
    # opens them (newer iohub); ours takes the store from any position
    kw = {"implementation": "tensorstore"}
    if "implementation" not in inspect.signature(open_ome_zarr).parameters:
        kw = {}
    plate = open_ome_zarr(_d() / "plate.zarr", mode="r", **kw)
    positions = [pos for _, pos in plate.positions()]
    tracks = [pd.read_csv(_d() / "tracks" / name / "tracks.csv") for name, _ in plate.positions()]
    for table, (name, _) in zip(tracks, plate.positions(), strict=True):
        table["fov_name"] = "/" + name
        # 0.1.0's dataset needs integer pixels (its DataModule truncates float centroids)
        table[["y", "x"]] = table[["y", "x"]].astype(int)
    out = {}
    for label, kwargs in (("predict", {"fit": False}), ("fit dt=1", {"time_interval": 1}),
                          ("fit any", {"time_interval": "any"})):  # fmt: skip
        ds = TripletDataset(positions, [t.copy() for t in tracks], ["Phase3D", "GFP"], (32, 32),
                            slice(2, 6), **kwargs)  # fmt: skip
        batch = ds.__getitems__([0, 1])
        entry = {"len": len(ds), "tree": _tree(batch)}
        if label == "predict":
            entry["values"] = _tensors({"anchor": batch["anchor"]})
            entry["cells"] = _cells(ds.__getitems__(list(range(len(ds))))["index"])
        else:
            entry["values"] = _tensors({"anchor": batch["anchor"]})
        out[label] = entry
    return out


def probe(case):
    kind = case["kind"]
    if kind == "channel":
        from viscy_data.channel_utils import parse_channel_name

        return {"value": parse_channel_name(case["arg"])}
    if kind in ("sampler_epoch", "sampler_ddp"):
        return _probe_flexible(kind)
    if kind == "sharded":
        from viscy_data import ShardedDistributedSampler

        data = list(range(11))
        out = {}
        for shuffle in (False, True):
            for drop_last in (False, True):
                out[f"{shuffle}-{drop_last}"] = [
                    list(ShardedDistributedSampler(data, num_replicas=3, rank=r, shuffle=shuffle,
                                                   seed=2, drop_last=drop_last))
                    for r in range(3)
                ]  # fmt: skip
        return {"value": out}
    if kind == "dm":
        return {"value": _observe_dm(case)}
    if kind == "dropout":
        import torch

        from viscy_data import ChannelDropout

        x = torch.arange(2 * 3 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 3, 2, 4, 4) + 1
        out = {}
        for p in (0.0, 1.0):
            module = ChannelDropout(channels=[1, 2], p=p)
            out[f"train p={p}"] = module.train()(x.clone())
            out[f"eval p={p}"] = module.eval()(x.clone())
        return {"value": {"values": out}}
    if kind == "norm_meta":
        from iohub.ngff import open_ome_zarr

        from viscy_data import read_norm_meta

        with open_ome_zarr(_d() / "plate.zarr", mode="r") as plate:
            meta = read_norm_meta(plate["A/1/0"])

        def plain(v):
            if isinstance(v, dict):
                return {str(k): plain(x) for k, x in v.items()}
            return round(float(v), 3)

        return {"value": plain(meta)}
    if kind == "dm_gpu":
        return {"value": _observe_gpu(case)}
    if kind == "sliding":
        return {"value": _observe_sliding()}
    if kind == "triplet_ds":
        return {"value": _observe_triplet_ds()}
    if kind == "batched_concat":
        return {"value": _observe_batched_concat()}
    if kind == "cached_concat_gpu":
        return {"value": _observe_cached_concat_gpu()}
    raise KeyError(kind)


def _probe_flexible(kind):
    import numpy as np
    import pandas as pd

    from viscy_data.sampler import FlexibleBatchSampler

    def make(**kw):
        return FlexibleBatchSampler(pd.DataFrame({"a": np.arange(23)}), batch_size=4,
                                    stratify_by=None, **kw)  # fmt: skip

    if kind == "sampler_epoch":
        s = make()
        first = [list(map(int, b)) for b in s]
        return {"value": {"len": len(s), "batch_sizes": [len(b) for b in first], "epoch": s.epoch}}
    glob = [list(map(int, b)) for b in make()]
    ranks = [[list(map(int, b)) for b in make(num_replicas=2, rank=r)] for r in range(2)]
    dealt = all(r == glob[i::2][: len(r)] for i, r in enumerate(ranks))
    return {"value": {"yielded": [len(r) for r in ranks], "dealt": dealt}}


def oracle(case):
    import warnings

    warnings.filterwarnings("ignore")
    return probe(case)


# ------------------------------------------------------------------ comparison (ours)


def _error_types(result):
    if "error" not in result:
        return set()
    return set(result.get("error_types", [])) | {result["error"].split(":")[0]}


_DEVIATIONS = {
    "dtype_deviation": "HCS batches leave the loader in the store's integer dtype, float32 after "
    "on_after_batch_transfer",
    "meta_deviation": "index / norm_meta layout (one HCSStackIndex layout; statistics per patch)",
    "extra_ok": "ours adds keys",
    "dtype_map": "label dtype int32 (0.1.0 int16 wraps labels > 32767)",
    "layout_deviation": "ours collates batches (0.1.0: lists of per-sample lists)",
}


def _strip(obs, case=None, ref=None):
    """Observation without values, relaxed by the case's documented deviations."""
    import re

    case = case or {}
    extra = set(case.get("extra_ok", []))
    dtype_map = case.get("dtype_map", {})

    def walk(v, r):
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k == "values" or (k == "raw_layout" and case.get("layout_deviation")):
                    continue
                if case.get("meta_deviation") and (k == "index" or k.endswith("norm_meta")):
                    continue
                if k in extra and not (isinstance(r, dict) and k in r):
                    continue
                out[k] = walk(x, r.get(k) if isinstance(r, dict) else None)
            return out
        if isinstance(v, list):
            rs = r if isinstance(r, list) and len(r) == len(v) else [None] * len(v)
            return [walk(x, y) for x, y in zip(v, rs, strict=True)]
        if isinstance(v, str):
            if case.get("dtype_deviation"):
                v = re.sub(r":(u?int(8|16|32))$", ":float32", v)
            for a, b in dtype_map.items():
                v = re.sub(f":{a}$", f":{b}", v)
        return v

    return walk(obs, ref)


def _values(obs, path=""):
    """``{path: {key: tensor}}`` of every recorded ``values`` entry."""
    out = {}
    if isinstance(obs, dict):
        for k, v in obs.items():
            if k == "values":
                out[path] = v
            else:
                out.update(_values(v, f"{path}/{k}"))
    elif isinstance(obs, list):
        for i, v in enumerate(obs):
            out.update(_values(v, f"{path}[{i}]"))
    return out


def _values_diff(mine, ref):
    """Largest difference over the 0.1.0 value tensors (ours may hold more keys)."""
    import _common

    worst = 0.0
    for path, tensors in ref.items():
        ours = mine.get(path)
        if not isinstance(tensors, dict) or not isinstance(ours, dict):
            diff = _common.max_abs_diff(ours, tensors)
        else:
            if not set(tensors) <= set(ours):
                return None
            diff = _common.max_abs_diff({k: ours[k] for k in tensors}, tensors)
        if diff is None:
            return None
        worst = max(worst, diff)
    return worst


def _compare(case, mine, ref, row):
    if not case.get("expect_error") and ("error" in ref or "error" in mine):
        return False, f"ours {mine.get('error', 'no error')}; 0.1.0 {ref.get('error', 'no error')}"
    if "error" in ref or "error" in mine:
        # ours may raise a subclass of 0.1.0's type (e.g. also a ValueError)
        same = bool(_error_types(ref) & _error_types(mine))
        return same, f"ours {mine.get('error', 'no error')}; 0.1.0 {ref.get('error', 'no error')}"
    if case["kind"] == "sharded" and mine["value"] != ref["value"]:
        # same shard sizes and the same samples over all ranks: only the dealing differs
        def summary(v):
            return {k: ([len(r) for r in ranks], sorted(set(sum(ranks, []))))
                    for k, ranks in v.items()}  # fmt: skip

        if summary(mine["value"]) == summary(ref["value"]):
            row["deviation_note"] = (
                "contiguous shards, also without shuffle (COMPATIBILITY.md); "
                f"ours {mine['value']}, 0.1.0 {ref['value']}"
            )
            return True, ""
        return False, f"ours {mine['value']}, 0.1.0 {ref['value']}"
    if case["kind"] == "norm_meta":  # statistics rounded to 3 decimals on both sides

        def flat(v, path=""):
            if isinstance(v, dict):
                return {k: x for key, y in v.items() for k, x in flat(y, f"{path}/{key}").items()}
            return {path: v}

        a, b = flat(mine["value"]), flat(ref["value"])
        same = a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 2e-3 + 1e-6 * abs(b[k]) for k in b)
        return same, f"ours {mine['value']}; 0.1.0 {ref['value']}"
    if case["kind"] == "cached_concat_gpu":
        # deviation on purpose: 0.1.0 hands the model the uncollated list, untransformed;
        # ours one collated dict through the first child's GPU transforms (mark 1.0)
        text = f"ours {mine['value']}; 0.1.0 {ref['value']}"
        expected = mine["value"] == {"layout": "dict", "marks": [1.0]}
        untouched = ref["value"]["layout"] == "list" and 1.0 not in ref["value"]["marks"]
        if expected and untouched:
            row["deviation_note"] = f"{case['deviation']}; {text}"[:600]
        return expected and (untouched or mine["value"] == ref["value"]), text
    if case["kind"] == "sampler_ddp":
        same = mine["value"]["dealt"] == ref["value"]["dealt"]
        return same, f"ours {mine['value']}, 0.1.0 {ref['value']}"
    exact = _strip(mine["value"]) == _strip(ref["value"])
    relaxed = _strip(mine["value"], case, ref["value"]) == _strip(ref["value"], case, ref["value"])
    diff = _values_diff(_values(mine["value"]), _values(ref["value"]))
    row["max_abs_diff"] = diff
    row["shapes_equal"] = relaxed
    if not relaxed:
        return False, f"structure: ours {_strip(mine['value'])}; 0.1.0 {_strip(ref['value'])}"
    if diff is None or diff > 1e-4:
        if case.get("values_deviation") and diff is not None:
            row["deviation_note"] = f"{case['values_deviation']} (COMPATIBILITY.md)"
            return True, ""
        return False, f"values differ (max abs diff {diff})"
    if not exact:
        used = [text for key, text in _DEVIATIONS.items() if case.get(key)]
        row["deviation_note"] = "; ".join(used) + " (COMPATIBILITY.md)"
    return True, ""


def ours(case, ref):
    covers = case["covers"]
    row = {"class": covers[0], "config": case["name"], "covers": covers}
    try:
        mine = probe(case)
    except Exception as exc:
        mine = {"error": f"{type(exc).__name__}: {exc}"[:500],
                "error_types": [c.__name__ for c in type(exc).__mro__]}  # fmt: skip
    same, note = _compare(case, mine, ref, row)
    deviation = row.pop("deviation_note", None)
    if (
        case["kind"] == "sampler_ddp"
        and same
        and mine["value"]["yielded"] != ref["value"]["yielded"]
    ):
        row.update(status="deviation", note=note)
    elif not same:
        row.update(status="DIFF", note=note[:600])
    elif deviation:
        row.update(status="deviation", note=deviation)
    elif case.get("fixed"):
        row.update(status="fixed", note=f"was: {case['fixed']}")
    else:
        row.update(status="ok", note="")
    return row
