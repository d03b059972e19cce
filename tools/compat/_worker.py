"""Run one section's cases on one side and save the results (``torch.save``).

    python _worker.py SECTION_FILE oracle OUT.pt
    python _worker.py SECTION_FILE ours OUT.pt ORACLE.pt

Executed by ``runner.py`` with the oracle's interpreter and with ours; it imports nothing
from this repository except the section file and ``_common.py`` beside it.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))


def load_section(path: str):
    spec = importlib.util.spec_from_file_location(f"compat_section_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    section_file, side, out = sys.argv[1:4]
    section = load_section(section_file)
    torch.set_num_threads(int(__import__("os").environ.get("COMPAT_THREADS", "2")))
    only = __import__("os").environ.get("COMPAT_ONLY")
    cases = [c for c in section.CASES if not only or only in c["name"]]
    results = {}
    if side == "oracle":
        for case in cases:
            try:
                results[case["name"]] = section.oracle(case)
            except Exception as exc:  # recorded: an error is an observable behaviour
                results[case["name"]] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    else:
        oracle_results = torch.load(sys.argv[4], weights_only=False)
        for case in cases:
            if case["name"] not in oracle_results:
                continue
            try:
                results[case["name"]] = section.ours(case, oracle_results[case["name"]])
            except Exception as exc:
                results[case["name"]] = {
                    "status": "DIFF",
                    "note": f"harness error in ours: {type(exc).__name__}: {exc}"[:300],
                    "traceback": traceback.format_exc(limit=3),
                }
    torch.save(results, out)


if __name__ == "__main__":
    main()
