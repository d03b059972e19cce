"""viscy-data: channel-name parsing and FlexibleBatchSampler batch structure (no plates).

Oracle side: call the 0.1.0 function / sampler and record the result; our side: the same
call, compared for equality. The HCS and classification behaviours checked against the
release on a synthetic plate (GPU-augmentation keys, ``batch_size // num_samples``,
``target_2d`` after the augmentations, the mask moving with the target, z-scored
classification patches, ``(1,)`` labels, stage errors) are encoded in viscy-data's unit tests
(``test_hcs.py``, ``test_cell_classification.py``).
"""

from __future__ import annotations

NAMES = [
    "Phase3D", "GFP", "raw GFP EX488 EM525-45", "BF", "BF_x", "BFP", "DIC", "DIC_1", "dic",
    "Retardance", "Orientation", "nuclei_prediction", "Phase3D_prediction", "Virtual",
    "raw mCherry EX561 EM600-37", "Cy5 EX640 EM690-50", "raw GFP EX488EM525",
    "raw GFP/mCherry EX488 EM525", "raw GFP EX 488 EM525", "raw X EM600-37 EX561",
    "raw BF EX488 EM525", "",
]  # fmt: skip

CASES = [
    {"name": f"parse_channel_name {n!r}", "kind": "channel", "arg": n, "fixed": "missing"}
    for n in NAMES
] + [
    {"name": "FlexibleBatchSampler epoch/iter", "kind": "sampler_epoch", "fixed": "no advance"},
    {
        "name": "FlexibleBatchSampler DDP dealing",
        "kind": "sampler_ddp",
        "deviation": "equal batch counts per rank (COMPATIBILITY.md)",
    },
]


def _anchors():
    import numpy as np
    import pandas as pd

    return pd.DataFrame({"a": np.arange(23)})


def oracle(case):
    if case["kind"] == "channel":
        from viscy_data.channel_utils import parse_channel_name

        return {"value": parse_channel_name(case["arg"])}
    from viscy_data.sampler import FlexibleBatchSampler

    make = lambda **kw: FlexibleBatchSampler(_anchors(), batch_size=4, stratify_by=None, **kw)  # noqa: E731
    if case["kind"] == "sampler_epoch":
        s = make()
        first = [list(map(int, b)) for b in s]
        return {"value": {"len": len(s), "batch_sizes": [len(b) for b in first], "epoch": s.epoch}}
    glob = [list(map(int, b)) for b in make()]
    ranks = [[list(map(int, b)) for b in make(num_replicas=2, rank=r)] for r in range(2)]
    return {
        "value": {
            "yielded": [len(r) for r in ranks],
            "dealt": all(r == glob[i::2][: len(r)] for i, r in enumerate(ranks)),
        }
    }


def ours(case, ref):
    row = {"class": "viscy_data.channel_utils.parse_channel_name", "config": case["name"]}
    if case["kind"] != "channel":
        row["class"] = "viscy_data.FlexibleBatchSampler"
    try:
        mine = oracle(case)
    except Exception as exc:
        mine = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    same = mine == ref
    if case["kind"] == "sampler_ddp" and "value" in mine and "value" in ref:
        same = mine["value"]["dealt"] == ref["value"]["dealt"]
        if mine["value"]["yielded"] != ref["value"]["yielded"]:
            row.update(status="deviation", note=f"ours {mine['value']}, 0.1.0 {ref['value']}")
            return row
    if not same:
        row.update(status="DIFF", note=f"ours {mine}, 0.1.0 {ref}"[:300])
    elif case.get("fixed"):
        row.update(status="fixed", note=f"was: {case['fixed']}")
    else:
        row.update(status="ok", note="")
    return row
