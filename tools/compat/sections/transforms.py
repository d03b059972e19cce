"""viscy-transforms: deterministic transforms give equal outputs; random ones draw from the
same distributions.

Each case applies one transform to a batch of ``N`` copies of one input (batched
transforms draw parameters per sample). Deterministic cases compare outputs (atol 1e-5).
Random cases reduce each sample's output to a few features (mean, std, min, max, mean
|change|; for affine cases, the sampled coordinates and the Jacobian at the centre of a
coordinate image) and compare their distributions oracle vs ours with the two-sample
Kolmogorov-Smirnov statistic (threshold 0.3 at N = 192; p ~ 1e-7 for equal laws).
"""

from __future__ import annotations

import torch
from _common import error_name, resolve

N = 192
KS_MAX = 0.3
T = "viscy_transforms."


def case(name, cls, kwargs, inp="noise", det=False, fixed=None, deviation=None, key="img"):
    return {
        "name": name,
        "class": T + cls,
        "kwargs": kwargs,
        "input": inp,
        "det": det,
        "fixed": fixed,
        "deviation": deviation,
        "key": key,
    }


def _input(kind: str) -> torch.Tensor:
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
    return base.expand(N, *base.shape[1:]).clone()


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
    ),
    case(
        "BatchedRandLocalPixelShufflingd",
        "BatchedRandLocalPixelShufflingd",
        {"keys": ["img"], "patch_size": 3, "shuffle_prob": 0.3, "prob": 0.8},
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
    ),
    case(
        "RandGaussianNoiseTensord",
        "RandGaussianNoiseTensord",
        {"keys": ["img"], "prob": 0.7, "std": 0.3},
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


def _apply(case_: dict) -> tuple[torch.Tensor, torch.Tensor]:
    x = _input(case_["input"])
    transform = resolve(case_["class"])(**case_["kwargs"])
    if hasattr(transform, "set_random_state"):
        transform.set_random_state(seed=11)
    torch.manual_seed(11)
    sample = {case_["key"]: x.clone(), "norm_meta": _norm_meta(x.shape[0])}
    out = transform(sample)
    if isinstance(out, list):  # multi-sample transforms
        out = out[0]
    return x, out[case_["key"]]


def oracle(case_: dict) -> dict:
    x, out = _apply(case_)
    result = {"shape": tuple(out.shape)}
    if case_["det"]:
        result["output"] = out[:4].float().clone()
    else:
        result["features"] = _features(x, out, case_["input"])
    return result


def _ks(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().sort().values, b.double().sort().values
    grid = torch.cat([a, b]).unique()
    cdf_a = torch.searchsorted(a, grid, right=True).double() / len(a)
    cdf_b = torch.searchsorted(b, grid, right=True).double() / len(b)
    return float((cdf_a - cdf_b).abs().max())


def ours(case_: dict, ref: dict) -> dict:
    row = {
        "section": "transforms",
        "name": case_["name"],
        "class": case_["class"],
        "config": case_["kwargs"],
    }
    if "error" in ref:
        try:
            _apply(case_)
            row.update(
                status="deviation" if case_["deviation"] else "DIFF",
                note=f"oracle raises {ref['error'][:100]}; ours does not",
            )
        except Exception as exc:
            row.update(status="ok", note=f"both raise ({error_name(exc)[:80]})")
        return row
    x, out = _apply(case_)
    notes = []
    if tuple(out.shape) != tuple(ref["shape"]):
        notes.append(f"shape {tuple(out.shape)} vs oracle {tuple(ref['shape'])}")
    elif case_["det"]:
        diff = float((out[:4].float() - ref["output"]).abs().max())
        row["max_abs_diff"] = diff
        if diff > 1e-5:
            notes.append(f"max|diff| {diff:.3g}")
    else:
        feats = _features(x, out, case_["input"])
        ks = {k: _ks(feats[k], v) for k, v in ref["features"].items() if k in feats}
        worst = max(ks, key=ks.get)
        row["ks_max"] = round(ks[worst], 3)
        row["note"] = f"KS max {ks[worst]:.2f} ({worst})"
        if ks[worst] > KS_MAX:
            bad = {k: round(v, 2) for k, v in ks.items() if v > KS_MAX}
            notes.append(f"distributions differ (KS): {bad}")
    row["shapes_equal"] = tuple(out.shape) == tuple(ref["shape"])
    if notes:
        row.update(status="deviation" if case_["deviation"] else "DIFF", note="; ".join(notes))
    else:
        row["status"] = "fixed" if case_["fixed"] else "ok"
        if case_["fixed"]:
            row["note"] = (row.get("note", "") + f"; was: {case_['fixed']}").lstrip("; ")
    return row


# differences kept on purpose (see COMPATIBILITY.md, viscy-transforms)
DEVIATIONS = {
    "BatchedRandAffined shear": "shear_range units and planes (ours warns)",
    "BatchedRandAdjustContrastd range": "gamma given as a list is accepted",
    "BatchedRandAdjustContrastd retain_stats": "gamma given as a list is accepted",
    "BatchedRandGaussianNoised": "noise drawn independently per sample",
    "BatchedRandGaussianNoised fixed std": "noise drawn independently per sample",
}
for _case in CASES:
    _case["deviation"] = _case["deviation"] or DEVIATIONS.get(_case["name"])
