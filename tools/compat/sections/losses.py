"""viscy-utils losses and viscy-models contrastive losses: same values for the same inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _common import error_name, resolve

MS_DSSIM_DEVIATION = "COMPATIBILITY.md#viscy_utilslossesmixedloss-the-ms-dssim-term"


def case(name, cls, kwargs, inputs, deviation=None, fixed=None):
    return {
        "name": name,
        "class": cls,
        "kwargs": kwargs,
        "inputs": inputs,
        "deviation": deviation,
        "fixed": fixed,
    }


CASES = [
    case(
        "MixedLoss L1",
        "viscy_utils.losses.MixedLoss",
        {"l1_alpha": 1.0, "l2_alpha": 0.0, "ms_dssim_alpha": 0.0},
        "stack",
        fixed="missing in ours",
    ),
    case(
        "MixedLoss L2",
        "viscy_utils.losses.MixedLoss",
        {"l1_alpha": 0.0, "l2_alpha": 1.0, "ms_dssim_alpha": 0.0},
        "stack",
        fixed="missing in ours",
    ),
    case(
        "MixedLoss L1+L2 4D",
        "viscy_utils.losses.MixedLoss",
        {"l1_alpha": 0.3, "l2_alpha": 0.7, "ms_dssim_alpha": 0.0},
        "image2d",
        fixed="missing in ours",
    ),
    case(
        "MixedLoss all zero",
        "viscy_utils.losses.MixedLoss",
        {"l1_alpha": 0.0, "l2_alpha": 0.0, "ms_dssim_alpha": 0.0},
        "stack",
        fixed="missing in ours",
    ),
    case(
        "MixedLoss defaults (ms_dssim)",
        "viscy_utils.losses.MixedLoss",
        {},
        "stack",
        deviation=MS_DSSIM_DEVIATION,
    ),
    case(
        "SpotlightLoss otsu",
        "viscy_utils.losses.SpotlightLoss",
        {},
        "spot",
        fixed="missing in ours",
    ),
    case(
        "SpotlightLoss fixed threshold",
        "viscy_utils.losses.SpotlightLoss",
        {"fg_threshold": 0.3, "lambda_mse": 0.3, "sigmoid_k": -0.5},
        "spot",
        fixed="missing in ours",
    ),
    case(
        "SpotlightLoss with mask",
        "viscy_utils.losses.SpotlightLoss",
        {"eps": 0.5},
        "spot_mask",
        fixed="missing in ours",
    ),
    case(
        "SpotlightLoss bad lambda",
        "viscy_utils.losses.SpotlightLoss",
        {"lambda_mse": 1.0},
        "spot",
        fixed="missing in ours",
    ),
    case(
        "NTXentLoss",
        "viscy_models.NTXentLoss",
        {"temperature": 0.1},
        "emb",
        deviation="COMPATIBILITY.md: viscy_models.NTXentLoss is an added top-level name",
    ),
    case("NTXentHCL beta 0.5", "viscy_models.NTXentHCL", {"temperature": 0.1, "beta": 0.5}, "emb"),
    case("NTXentHCL beta 0", "viscy_models.NTXentHCL", {"beta": 0.0}, "emb"),
]


def _inputs(kind: str):
    gen = torch.Generator().manual_seed(5)
    if kind == "stack":
        t = F.avg_pool3d(torch.rand(2, 1, 3, 176, 176, generator=gen), (1, 5, 5), 1, (0, 2, 2))
        return (t + 0.05 * torch.randn(t.shape, generator=gen), t)
    if kind == "image2d":
        return (torch.rand(2, 1, 16, 16, generator=gen), torch.rand(2, 1, 16, 16, generator=gen))
    if kind in ("spot", "spot_mask"):
        target = torch.randn(2, 2, 3, 32, 32, generator=gen)
        pred = target + 0.5 * torch.randn(target.shape, generator=gen)
        if kind == "spot":
            return (pred, target)
        return (pred, target, torch.rand(target.shape, generator=gen) > 0.6)
    if kind == "emb":
        return (torch.randn(16, 8, generator=gen), torch.arange(8).repeat(2))
    raise ValueError(kind)


def _run(case_: dict):
    loss = resolve(case_["class"])(**case_["kwargs"])
    return loss(*_inputs(case_["inputs"])).detach()


def oracle(case_: dict) -> dict:
    try:
        return {"value": _run(case_)}
    except Exception as exc:
        return {"raises": error_name(exc)}


def ours(case_: dict, ref: dict) -> dict:
    row = {
        "section": "losses",
        "name": case_["name"],
        "class": case_["class"],
        "config": case_["kwargs"],
    }
    try:
        value, raised = _run(case_), None
    except Exception as exc:
        value, raised = None, error_name(exc)
    if "raises" in ref:
        same = raised is not None and raised.split(":")[0] == ref["raises"].split(":")[0]
        row["note"] = f"oracle raises {ref['raises'][:80]}; ours " + (raised or "returns")[:80]
        if same:
            row["status"] = "fixed" if case_["fixed"] else "ok"
        else:
            row["status"] = "deviation" if case_["deviation"] else "DIFF"
        return row
    if raised:
        row.update(status="DIFF", note=f"ours raises {raised[:100]}")
        return row
    diff = float((value.double() - ref["value"].double()).abs().max())
    row["max_abs_diff"] = diff
    row["note"] = f"oracle {float(ref['value']):.5g}, ours {float(value):.5g}"
    if diff <= 1e-5 * (1 + abs(float(ref["value"]))):
        row["status"] = "fixed" if case_["fixed"] else "ok"
    else:
        row["status"] = "deviation" if case_["deviation"] else "DIFF"
    return row


# differences kept on purpose (see COMPATIBILITY.md, viscy-utils)
DEVIATIONS = {"SpotlightLoss with mask": "Dice smoothing with a large eps (< 5e-5)"}
for _case in CASES:
    _case["deviation"] = _case["deviation"] or DEVIATIONS.get(_case["name"])
    if _case["deviation"]:
        _case["fixed"] = None
