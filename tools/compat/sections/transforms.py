"""viscy-transforms: deterministic transforms give equal outputs; random ones draw from the
same distributions.

Deterministic cases apply one transform to a batch of 4 copies of one input (one sample
for the unbatched MONAI wrappers, ``unbatched=True``; the array transform itself for
``array=True``) and compare every output tensor (atol 1e-5). Random cases call the
transform ``CALLS`` times with a different seed each (``set_random_state`` and
``torch.manual_seed``) on ``N // CALLS`` copies of the input (batched) or on one sample
(unbatched), reduce each output sample to a few features (mean, std, min, max, mean
|change|; for coordinate inputs, the sampled coordinates and the Jacobian at the centre)
and compare the pooled distributions oracle vs ours with the two-sample Kolmogorov-Smirnov
statistic (threshold 0.3 at N = 192; p ~ 1e-7 for equal laws). For batched cases the
fraction of changed samples per call is compared too (its variance: a transform that
decides once per batch instead of per sample has ~``N // CALLS`` times the variance).
"""

from __future__ import annotations

import torch
from _common import error_name, max_abs_diff, resolve, structure, to_plain

N = 192
CALLS = 24  # seeds per batched random case (N // CALLS samples each); unbatched: N calls
DET_BATCH = 4
KS_MAX = 0.3
VAR_RATIO_MAX = 4.0  # per-batch draws give ~N // CALLS = 8x
T = "viscy_transforms."


def case(
    name,
    cls,
    kwargs,
    inp="noise",
    det=False,
    fixed=None,
    deviation=None,
    key="img",
    array=False,
    unbatched=False,
    extra=(),
):
    """``array``: call the array transform on the tensor; ``unbatched``: a (C, Z, Y, X)
    sample (MONAI wrappers); ``extra``: more keys holding a copy of the input (weights,
    channels to stack)."""
    return {
        "name": name,
        "class": T + cls,
        "covers": [T + cls],
        "kwargs": kwargs,
        "input": inp,
        "det": det,
        "fixed": fixed,
        "deviation": deviation,
        "key": key,
        "array": array,
        "unbatched": unbatched,
        "extra": list(extra),
    }


def _input(kind: str, batch: int = N) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    if kind == "noise":
        base = torch.rand(1, 1, 8, 24, 24, generator=gen) * 2 + 0.5
    elif kind == "coords":  # channels: z, y, x coordinates in voxels from the centre
        z, y, x = torch.meshgrid(
            torch.arange(9.0) - 4,
            torch.arange(33.0) - 16,
            torch.arange(33.0) - 16,
            indexing="ij",
        )
        base = torch.stack([z, y, x])[None]
    else:
        raise ValueError(kind)
    return base.expand(batch, *base.shape[1:]).clone()


def _norm_meta(batch: int) -> dict:
    stats = {
        "mean": 1.2,
        "std": 0.4,
        "median": 1.1,
        "iqr": 0.5,
        "min": 0.5,
        "max": 2.5,
        "p1": 0.6,
        "p99": 2.3,
        "p5": 0.7,
        "p95": 2.2,
    }
    per_sample = {k: torch.full((batch,), v) for k, v in stats.items()}
    return {"img": {"fov_statistics": per_sample, "dataset_statistics": per_sample}}


CASES = [
    # deterministic
    case(
        "MinMaxSampled p1_p99",
        "MinMaxSampled",
        {"keys": ["img"], "level": "fov_statistics"},
        det=True,
        fixed="mapped to [0, 1] without clipping",
    ),
    case(
        "MinMaxSampled min_max",
        "MinMaxSampled",
        {"keys": ["img"], "level": "dataset_statistics", "data_range": "min_max"},
        det=True,
        fixed="mapped to [0, 1] without clipping",
    ),
    case(
        "MinMaxSampled p5_p95",
        "MinMaxSampled",
        {"keys": ["img"], "level": "fov_statistics", "data_range": "p5_p95"},
        det=True,
        fixed="mapped to [0, 1] without clipping",
    ),
    case(
        "NormalizeSampled mean/std",
        "NormalizeSampled",
        {"keys": ["img"], "level": "fov_statistics"},
        det=True,
    ),
    case(
        "NormalizeSampled median/iqr",
        "NormalizeSampled",
        {"keys": ["img"], "level": "dataset_statistics", "subtrahend": "median", "divisor": "iqr"},
        det=True,
    ),
    case(
        "BatchedRandAdjustContrastd gamma=2.0 prob=1",
        "BatchedRandAdjustContrastd",
        {"keys": ["img"], "gamma": 2.0, "prob": 1.0},
        det=True,
        fixed="a scalar gamma was sampled from (0.5, gamma)",
    ),
    case(
        "BatchedScaleIntensityRangePercentilesd",
        "BatchedScaleIntensityRangePercentilesd",
        {"keys": ["img"], "lower": 1, "upper": 99, "b_min": 0.0, "b_max": 1.0},
        det=True,
    ),
    case(
        "BatchedScaleIntensityRangePercentilesd clip",
        "BatchedScaleIntensityRangePercentilesd",
        {"keys": ["img"], "lower": 5, "upper": 95, "b_min": -1.0, "b_max": 1.0, "clip": True},
        det=True,
    ),
    case(
        "BatchedCenterSpatialCropd",
        "BatchedCenterSpatialCropd",
        {"keys": ["img"], "roi_size": [4, 16, 16]},
        det=True,
    ),
    case(
        "BatchedZoomd",
        "BatchedZoomd",
        {"keys": ["img"], "scale_factor": [1, 0.5, 0.5], "mode": "area"},
        det=True,
    ),
    case(
        "BatchedRandFlipd prob=1 axis 2",
        "BatchedRandFlipd",
        {"keys": ["img"], "spatial_axes": [2], "prob": 1.0},
        det=True,
    ),
    case(
        "BatchedRandInvertIntensityd prob=1",
        "BatchedRandInvertIntensityd",
        {"keys": ["img"], "prob": 1.0},
        det=True,
    ),
    case(
        "BatchedChannelWiseZReductiond mip",
        "BatchedChannelWiseZReductiond",
        {"keys": ["img"]},
        det=True,
    ),
    # random: distributions
    case(
        "BatchedRandAffined translate",
        "BatchedRandAffined",
        {"keys": ["img"], "prob": 1.0, "translate_range": [0.0, 0.2, 0.2]},
        inp="coords",
        fixed="translate_range read in voxels (0.1.0: fraction of the size)",
    ),
    case(
        "BatchedRandAffined shear",
        "BatchedRandAffined",
        {"keys": ["img"], "prob": 1.0, "shear_range": [10.0, 0.0, 0.0]},
        inp="coords",
        fixed="shear_range read as a factor (0.1.0: degrees)",
    ),
    case(
        "BatchedRandAffined rotate",
        "BatchedRandAffined",
        {"keys": ["img"], "prob": 1.0, "rotate_range": [3.14, 0.0, 0.0]},
        inp="coords",
    ),
    case(
        "BatchedRandAffined scale",
        "BatchedRandAffined",
        {"keys": ["img"], "prob": 1.0, "scale_range": [[0.8, 1.2], [0.7, 1.3], [0.7, 1.3]]},
        inp="coords",
    ),
    case(
        "BatchedRandAffined isotropic scale",
        "BatchedRandAffined",
        {
            "keys": ["img"],
            "prob": 1.0,
            "scale_range": [[0.8, 1.2], [0.8, 1.2], [0.8, 1.2]],
            "isotropic_scale": True,
        },
        inp="coords",
    ),
    case(
        "BatchedRandAffined prob=0.5 rotate",
        "BatchedRandAffined",
        {"keys": ["img"], "prob": 0.5, "rotate_range": [1.0, 0.0, 0.0]},
        inp="coords",
    ),
    case(
        "BatchedRandAdjustContrastd range",
        "BatchedRandAdjustContrastd",
        {"keys": ["img"], "gamma": [0.5, 2.0], "prob": 0.8},
    ),
    case(
        "BatchedRandAdjustContrastd retain_stats",
        "BatchedRandAdjustContrastd",
        {"keys": ["img"], "gamma": [0.5, 2.0], "prob": 1.0, "retain_stats": True},
    ),
    case(
        "BatchedRandScaleIntensityd",
        "BatchedRandScaleIntensityd",
        {"keys": ["img"], "factors": 0.5, "prob": 0.7},
    ),
    case(
        "BatchedRandGaussianNoised",
        "BatchedRandGaussianNoised",
        {"keys": ["img"], "prob": 0.7, "std": 0.3},
    ),
    case(
        "BatchedRandGaussianNoised fixed std",
        "BatchedRandGaussianNoised",
        {"keys": ["img"], "prob": 1.0, "std": 0.3, "sample_std": False},
    ),
    case(
        "BatchedRandGaussianSmoothd",
        "BatchedRandGaussianSmoothd",
        {
            "keys": ["img"],
            "prob": 0.8,
            "sigma_x": [0.5, 2.0],
            "sigma_y": [0.5, 2.0],
            "sigma_z": [0.0, 1.0],
        },
    ),
    case(
        "BatchedRandHistogramShiftd",
        "BatchedRandHistogramShiftd",
        {"keys": ["img"], "shift_range": [-0.3, 0.3], "prob": 0.8},
    ),
    case(
        "BatchedRandInvertIntensityd prob=0.4",
        "BatchedRandInvertIntensityd",
        {"keys": ["img"], "prob": 0.4},
    ),
    case(
        "BatchedRandSharpend",
        "BatchedRandSharpend",
        {"keys": ["img"], "alpha_range": [0.1, 0.9], "prob": 0.8},
        fixed="unsharp mask with a Y/X Gaussian (0.1.0: 3D Laplacian, zero padding)",
    ),
    case(
        "BatchedRandLocalPixelShufflingd",
        "BatchedRandLocalPixelShufflingd",
        {"keys": ["img"], "patch_size": 3, "shuffle_prob": 0.3, "prob": 0.8},
        fixed="tiled Y/X patches (0.1.0: up to 100 random cubes)",
    ),
    case(
        "BatchedRandZStackShiftd",
        "BatchedRandZStackShiftd",
        {"keys": ["img"], "max_shift": 3, "prob": 0.8},
    ),
    case(
        "BatchedRandFlipd prob=0.5",
        "BatchedRandFlipd",
        {"keys": ["img"], "spatial_axes": [1, 2], "prob": 0.5},
    ),
    case(
        "BatchedRandSpatialCropd",
        "BatchedRandSpatialCropd",
        {"keys": ["img"], "roi_size": [4, 12, 12]},
    ),
    case(
        "BatchedRand3DElasticd",
        "BatchedRand3DElasticd",
        {"keys": ["img"], "sigma_range": [2.0, 4.0], "magnitude_range": [1.0, 3.0], "prob": 0.8},
        inp="coords",
        fixed="Gaussian-smoothed uniform field, align_corners=False (0.1.0: box, normal)",
    ),
    case(
        "BatchedRand3DElasticd small sigma",
        "BatchedRand3DElasticd",
        {"keys": ["img"], "sigma_range": [0.3, 1.2], "magnitude_range": [0.5, 2.0], "prob": 1.0},
        inp="coords",
    ),
    case(
        "RandGaussianNoiseTensord",
        "RandGaussianNoiseTensord",
        {"keys": ["img"], "prob": 0.7, "std": 0.3},
    ),
    # array transforms and the rest of the batched surface
    case(
        "BatchedCenterSpatialCrop",
        "BatchedCenterSpatialCrop",
        {"roi_size": [4, 12, 12]},
        det=True,
        array=True,
    ),
    case(
        "BatchedChannelWiseZReduction",
        "BatchedChannelWiseZReduction",
        {},
        det=True,
        array=True,
    ),
    case(
        "BatchedChannelWiseZReductiond labelfree",
        "BatchedChannelWiseZReductiond",
        {"keys": ["img", "fl"], "labelfree_keys": ["img"]},
        det=True,
        extra=["fl"],
    ),
    case(
        "BatchedDivisibleCropd",
        "BatchedDivisibleCropd",
        {"keys": ["img"], "k": [3, 5, 5]},
        det=True,
    ),
    case(
        "BatchedRandAdjustContrast gamma=2.0",
        "BatchedRandAdjustContrast",
        {"gamma": 2.0, "prob": 1.0},
        det=True,
        array=True,
    ),
    case(
        "BatchedRandFlip prob=1",
        "BatchedRandFlip",
        {"spatial_axes": [1, 2], "prob": 1.0},
        det=True,
        array=True,
    ),
    case(
        "BatchedScaleIntensityRangePercentiles",
        "BatchedScaleIntensityRangePercentiles",
        {"lower": 2, "upper": 98, "b_min": 0.0, "b_max": 1.0},
        det=True,
        array=True,
    ),
    case(
        "BatchedZoom",
        "BatchedZoom",
        {"scale_factor": [1, 0.5, 0.5], "mode": "area"},
        det=True,
        array=True,
    ),
    case(
        "BatchedStackChannelsd",
        "BatchedStackChannelsd",
        {"channel_map": {"source": ["img"], "target": ["a", "b"]}},
        det=True,
        extra=["a", "b"],
        fixed="kept the channel keys and norm_meta (0.1.0: only the stacked keys)",
    ),
    case("Decollate", "Decollate", {}, det=True, array=True),
    case("Decollated", "Decollated", {"keys": ["img"]}, det=True),
    case(
        "TiledSpatialCropSamplesd",
        "TiledSpatialCropSamplesd",
        {"keys": ["img"], "roi_size": [4, 12, 12], "num_samples": 4},
        det=True,
        fixed="rejected a (B, C, Z, Y, X) batch",
    ),
    case(
        "BatchedRandGaussianNoise",
        "BatchedRandGaussianNoise",
        {"prob": 0.7, "std": 0.3},
        array=True,
    ),
    case(
        "RandGaussianNoiseTensor",
        "RandGaussianNoiseTensor",
        {"prob": 0.7, "std": 0.3},
        array=True,
    ),
    case(
        "BatchedRandGaussianSmooth",
        "BatchedRandGaussianSmooth",
        {"sigma_x": [0.5, 2.0], "sigma_y": [0.5, 2.0], "sigma_z": [0.0, 1.0], "prob": 0.8},
        array=True,
    ),
    case(
        "BatchedRandScaleIntensity",
        "BatchedRandScaleIntensity",
        {"factors": 0.5, "prob": 0.7},
        array=True,
    ),
    case(
        "BatchedRandSpatialCrop",
        "BatchedRandSpatialCrop",
        {"roi_size": [4, 12, 12]},
        array=True,
    ),
    case(
        "BatchedRandWeightedCropd",
        "BatchedRandWeightedCropd",
        {"keys": ["img"], "w_key": "w", "spatial_size": [4, 12, 12]},
        extra=["w"],
    ),
    # MONAI wrappers (one sample, no batch axis)
    case(
        "CenterSpatialCropd",
        "CenterSpatialCropd",
        {"keys": ["img"], "roi_size": [4, 12, 12]},
        det=True,
        unbatched=True,
    ),
    case(
        "NormalizeIntensityd",
        "NormalizeIntensityd",
        {"keys": ["img"]},
        det=True,
        unbatched=True,
    ),
    case(
        "ScaleIntensityRangePercentilesd",
        "ScaleIntensityRangePercentilesd",
        {"keys": ["img"], "lower": 1, "upper": 99, "b_min": 0.0, "b_max": 1.0},
        det=True,
        unbatched=True,
    ),
    case(
        "StackChannelsd",
        "StackChannelsd",
        {"channel_map": {"source": ["img"], "target": ["a"]}},
        det=True,
        unbatched=True,
        extra=["a"],
        fixed="kept the channel keys (0.1.0: only the stacked keys)",
    ),
    case("ToDeviced", "ToDeviced", {"keys": ["img"], "device": "cpu"}, det=True, unbatched=True),
    case(
        "RandAdjustContrastd",
        "RandAdjustContrastd",
        {"keys": ["img"], "prob": 0.8, "gamma": [0.5, 2.0]},
        unbatched=True,
    ),
    case(
        "RandAffined",
        "RandAffined",
        {
            "keys": ["img"],
            "prob": 0.9,
            "rotate_range": [0.5, 0.0, 0.0],
            "shear_range": 0.0,
            "scale_range": [0.0, 0.2, 0.2],
        },
        inp="coords",
        unbatched=True,
    ),
    case(
        "RandFlipd",
        "RandFlipd",
        {"keys": ["img"], "prob": 0.5, "spatial_axis": [1, 2]},
        unbatched=True,
    ),
    case(
        "RandGaussianNoised",
        "RandGaussianNoised",
        {"keys": ["img"], "prob": 0.7, "mean": 0.0, "std": 0.3},
        unbatched=True,
    ),
    case(
        "RandGaussianSmoothd",
        "RandGaussianSmoothd",
        {
            "keys": ["img"],
            "prob": 0.8,
            "sigma_x": [0.5, 2.0],
            "sigma_y": [0.5, 2.0],
            "sigma_z": [0.0, 1.0],
        },
        unbatched=True,
    ),
    case(
        "RandInvertIntensityd",
        "RandInvertIntensityd",
        {"keys": ["img"], "prob": 0.4},
        unbatched=True,
    ),
    case(
        "RandScaleIntensityd",
        "RandScaleIntensityd",
        {"keys": ["img"], "factors": 0.5, "prob": 0.7},
        unbatched=True,
    ),
    case(
        "RandSpatialCropd",
        "RandSpatialCropd",
        {"keys": ["img"], "roi_size": [4, 12, 12]},
        unbatched=True,
    ),
    case(
        "RandWeightedCropd",
        "RandWeightedCropd",
        {"keys": ["img"], "w_key": "w", "spatial_size": [4, 12, 12], "num_samples": 2},
        unbatched=True,
        extra=["w"],
    ),
]


def _features(x: torch.Tensor, out: torch.Tensor, kind: str) -> dict[str, torch.Tensor]:
    out = out.float()
    feats = {}
    flat = out.flatten(1)
    feats.update(mean=flat.mean(1), std=flat.std(1), min=flat.amin(1), max=flat.amax(1))
    if out.shape == x.shape:
        feats["change"] = (out - x).abs().flatten(1).mean(1)
    if kind == "coords" and out.shape == x.shape:
        zc, yc, xc = (s // 2 for s in out.shape[2:])
        centre = out[:, :, zc, yc, xc]
        for i, axis in enumerate("zyx"):
            feats[f"at_centre_{axis}"] = centre[:, i]
        # Jacobian of the sampled coordinates at the centre (central differences)
        for j, (dz, dy, dx) in enumerate(((1, 0, 0), (0, 1, 0), (0, 0, 1))):
            plus = out[:, :, zc + dz, yc + dy, xc + dx]
            minus = out[:, :, zc - dz, yc - dy, xc - dx]
            for i, axis in enumerate("zyx"):
                feats[f"d{axis}/d{'zyx'[j]}"] = (plus[:, i] - minus[:, i]) / 2
    return feats


def _call(case_: dict, transform, x: torch.Tensor):
    """One call of the transform on ``x``; returns the raw output."""
    if case_["array"]:
        return transform(x)
    sample = {case_["key"]: x.clone()}
    for name in case_["extra"]:
        sample[name] = x.clone()
    if not case_["unbatched"]:
        sample["norm_meta"] = _norm_meta(x.shape[0])
    return transform(sample)


def _main_tensor(case_: dict, out) -> torch.Tensor:
    if isinstance(out, list):  # multi-sample transforms
        out = out[0]
    return out if isinstance(out, torch.Tensor) else out[case_["key"]]


def _without_meta(value):
    if isinstance(value, list):
        return [_without_meta(v) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "norm_meta"}
    return value


def _build(case_: dict):
    return resolve(case_["class"])(**case_["kwargs"])


def _run_det(case_: dict):
    x = _input(case_["input"], DET_BATCH)
    if case_["unbatched"]:
        x = x[0]
    transform = _build(case_)
    if hasattr(transform, "set_random_state"):
        transform.set_random_state(seed=11)
    torch.manual_seed(11)
    return to_plain(_without_meta(_call(case_, transform, x)))


def _run_random(case_: dict) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """(inputs, outputs, changed fraction per call) over ``CALLS`` (or ``N``) seeded calls."""
    transform = _build(case_)
    calls = N if case_["unbatched"] else CALLS
    xs, outs, fractions = [], [], []
    for seed in range(calls):
        x = _input(case_["input"], 1 if case_["unbatched"] else N // CALLS)
        if case_["unbatched"]:
            x = x[0]
        if hasattr(transform, "set_random_state"):
            transform.set_random_state(seed=1000 + seed)
        torch.manual_seed(1000 + seed)
        out = _main_tensor(case_, _call(case_, transform, x))
        if case_["unbatched"]:
            x, out = x[None], out[None]
        if out.shape == x.shape:
            changed = (out.float() - x).abs().flatten(1).amax(1) > 1e-6
            fractions.append(float(changed.float().mean()))
        xs.append(x)
        outs.append(out)
    return torch.cat(xs), torch.cat(outs), fractions


def oracle(case_: dict) -> dict:
    if case_["det"]:
        out = _run_det(case_)
        return {"shape": structure(out), "output": out}
    x, out, fractions = _run_random(case_)
    return {
        "shape": tuple(out.shape),
        "features": _features(x, out, case_["input"]),
        "fractions": fractions,
    }


def _ks(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().sort().values, b.double().sort().values
    grid = torch.cat([a, b]).unique()
    cdf_a = torch.searchsorted(a, grid, right=True).double() / len(a)
    cdf_b = torch.searchsorted(b, grid, right=True).double() / len(b)
    return float((cdf_a - cdf_b).abs().max())


def _variance_note(ours_f: list[float], ref_f: list[float]) -> str | None:
    """A note when the per-call changed fraction varies much more or less than 0.1.0's."""
    if not len(ours_f) == len(ref_f) == CALLS:
        return None
    var_o = float(torch.tensor(ours_f).var())
    var_r = float(torch.tensor(ref_f).var())
    if max(var_o, var_r) < 1e-3:
        return None
    ratio = (var_o + 1e-4) / (var_r + 1e-4)
    if 1 / VAR_RATIO_MAX < ratio < VAR_RATIO_MAX:
        return None
    return (
        f"changed fraction per call varies {ratio:.2g}x 0.1.0's (ours var {var_o:.3f}, "
        f"0.1.0 {var_r:.3f}): per-sample vs per-batch draws"
    )


def ours(case_: dict, ref: dict) -> dict:
    row = {
        "section": "transforms",
        "name": case_["name"],
        "class": case_["class"],
        "covers": case_["covers"],
        "config": case_["kwargs"],
    }
    if "error" in ref:
        try:
            _run_det(case_) if case_["det"] else _run_random(case_)
            row.update(
                status="deviation" if case_["deviation"] else "DIFF",
                note=f"oracle raises {ref['error'][:100]}; ours does not",
            )
        except Exception as exc:
            row.update(status="ok", note=f"both raise ({error_name(exc)[:80]})")
        return row
    notes = []
    if case_["det"]:
        out = _run_det(case_)
        row["shapes_equal"] = structure(out) == ref["shape"]
        diff = max_abs_diff(out, ref["output"])
        if diff is None:
            notes.append(f"structure {structure(out)} vs oracle {ref['shape']}"[:200])
        else:
            row["max_abs_diff"] = diff
            if diff > 1e-5:
                notes.append(f"max|diff| {diff:.3g}")
    else:
        x, out, fractions = _run_random(case_)
        row["shapes_equal"] = tuple(out.shape) == tuple(ref["shape"])
        if not row["shapes_equal"]:
            notes.append(f"shape {tuple(out.shape)} vs oracle {tuple(ref['shape'])}")
        else:
            feats = _features(x, out, case_["input"])
            ks = {k: _ks(feats[k], v) for k, v in ref["features"].items() if k in feats}
            worst = max(ks, key=ks.get)
            row["ks_max"] = round(ks[worst], 3)
            row["note"] = f"KS max {ks[worst]:.2f} ({worst})"
            if ks[worst] > KS_MAX:
                bad = {k: round(v, 2) for k, v in ks.items() if v > KS_MAX}
                notes.append(f"distributions differ (KS): {bad}")
            spread = _variance_note(fractions, ref.get("fractions", []))
            if spread:
                notes.append(spread)
    if notes:
        row.update(status="deviation" if case_["deviation"] else "DIFF", note="; ".join(notes))
    else:
        row["status"] = "fixed" if case_["fixed"] else "ok"
        if case_["fixed"]:
            row["note"] = (row.get("note", "") + f"; was: {case_['fixed']}").lstrip("; ")
    return row


# differences kept on purpose (see COMPATIBILITY.md, viscy-transforms)
DEVIATIONS = {
    "BatchedRandSharpend": "prob per sample and one alpha per sample for all keys",
    "BatchedRand3DElasticd": "prob per sample (0.1.0: once per batch)",
    "BatchedRandHistogramShiftd": "prob per sample (0.1.0: once per batch)",
    "BatchedRandZStackShiftd": "prob per sample (0.1.0: once per batch)",
    "BatchedRandAffined shear": "shear_range units and planes (ours warns)",
    "BatchedRandAdjustContrastd range": "gamma given as a list is accepted",
    "BatchedRandAdjustContrastd retain_stats": "gamma given as a list is accepted",
    "BatchedRandGaussianNoised": "noise drawn independently per sample",
    "BatchedRandGaussianNoised fixed std": "noise drawn independently per sample",
}
for _case in CASES:
    _case["deviation"] = _case["deviation"] or DEVIATIONS.get(_case["name"])
