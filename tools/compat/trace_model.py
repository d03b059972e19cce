"""Locate where a model's output starts to differ from 0.1.0 (a debugging aid).

    python tools/compat/trace_model.py --oracle /work/oracle-venv/bin/python "Unet2d default"

Runs the named case of ``sections/models.py`` on both sides with forward hooks on every
submodule, and prints, in the oracle's call order, each module's output shape and the max
abs difference to ours under the same name, plus the oracle model's ``repr`` on request.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "sections"))


def record(case_name: str, state_dict=None):
    import models as section
    from _common import resolve

    case = next(c for c in section.CASES if c["name"] == case_name)
    torch.manual_seed(0)
    model = resolve(case["class"])(**case["kwargs"])
    if state_dict is None:
        section._perturb(model)
    else:
        model.load_state_dict(state_dict, strict=True)
    model.eval()
    trace = []

    def hook(name):
        def fn(_module, _inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, torch.Tensor):
                trace.append((name, type(_module).__name__, out.detach().clone()))

        return fn

    for name, module in model.named_modules():
        if name:
            module.register_forward_hook(hook(name))
    x = section._inputs(case)[0]
    torch.manual_seed(1)
    with torch.no_grad():
        try:
            model(x, **case["forward_kwargs"])
        except Exception as exc:
            trace.append(("<error>", repr(exc), torch.zeros(0)))
    return model, trace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--oracle", required=True)
    parser.add_argument("--repr", action="store_true")
    parser.add_argument("--side", default="driver", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("cases", nargs="+")
    args = parser.parse_args()
    if args.side == "oracle":
        refs = {}
        for name in args.cases:
            model, trace = record(name)
            refs[name] = {"sd": model.state_dict(), "trace": trace, "repr": repr(model)}
        torch.save(refs, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trace.pt"
        subprocess.run(
            [
                args.oracle,
                __file__,
                "--oracle",
                "-",
                "--side",
                "oracle",
                "--out",
                str(out),
                *args.cases,
            ],
            check=True,
        )
        refs = torch.load(out, weights_only=False)
    for name in args.cases:
        print(f"=== {name}")
        _report(name, refs[name], args.repr)


def _report(case_name: str, ref: dict, show_repr: bool) -> None:
    if show_repr:
        print(ref["repr"])
    _, ours = record(case_name, ref["sd"])
    ours_by_name = {name: t for name, _, t in ours}
    for name, kind, t in ref["trace"]:
        mine = ours_by_name.get(name)
        if mine is None:
            d = "absent in ours"
        elif mine.shape != t.shape:
            d = f"shape ours {tuple(mine.shape)}"
        else:
            d = f"{(mine.double() - t.double()).abs().max().item():.3g}"
        print(f"{name:60s} {kind:22s} {tuple(t.shape)!s:22s} {d}")


if __name__ == "__main__":
    main()
