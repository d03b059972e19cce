"""Differential harness: run each section's probes in the 0.1.0 oracle and in ours, compare.

    python tools/compat/runner.py --oracle /work/oracle-venv/bin/python
    python tools/compat/runner.py --oracle ... --sections models losses --only Unet3d

A *section* is a file ``sections/<name>.py`` with ``CASES`` (dicts with a unique ``name``),
``oracle(case) -> result`` (run by the oracle's interpreter; only torch and the 0.1.0
packages may be used) and ``ours(case, result) -> row`` (run by ours). Results travel
between the two environments as ``torch.save`` files. A row has ``section``, ``name``,
``class``, ``config`` and ``status``: ``ok`` (same), ``fixed`` (same now; a difference
found by this harness was fixed, see the case's ``fixed`` note), ``deviation`` (differs on
purpose; documented in COMPATIBILITY.md), ``skip`` or ``DIFF`` (an undocumented difference),
plus ``keys_equal``, ``shapes_equal``, ``max_abs_diff`` and ``note`` where they apply.
To add a section (e.g. data modules), drop a new file in ``sections/``.

Set ``COMPAT_ORACLE_CACHE=DIR`` to keep each section's oracle results there and reuse them;
the file name carries a hash of the section file and the ``_*.py`` helpers, so a
changed section is run again (stale files stay; delete them at will).

The summary line counts the spec classes/functions (``coverage.py``) that some case of any
section declares (``covers``/``class``), plus the rows, statuses and differences.

Writes ``report.md`` and ``report.json`` (default: beside this file) and prints the summary
line; exits 1 if any row is ``DIFF``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SECTIONS = HERE / "sections"
WORKER = HERE / "_worker.py"


def _load_coverage():
    spec = importlib.util.spec_from_file_location("compat_coverage", HERE / "coverage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def section_digest(name: str) -> str:
    """Short hash of what decides a section's oracle results (its file and the helpers)."""
    digest = hashlib.sha256()
    for path in (SECTIONS / f"{name}.py", *sorted(HERE.glob("_*.py"))):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def available_sections() -> list[str]:
    return sorted(p.stem for p in SECTIONS.glob("*.py") if not p.stem.startswith("_"))


def _run(python: str, args: list[str], env: dict[str, str], timeout: float) -> None:
    proc = subprocess.run(
        [python, str(WORKER), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode:
        raise RuntimeError(
            f"{python} {WORKER.name} {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stderr[-3000:]}"
        )


def run_section(
    name: str, oracle_python: str, workdir: Path, only: str | None, timeout: float
) -> list[dict]:
    """Oracle pass, then our pass, for one section; returns its rows."""
    section_file = str(SECTIONS / f"{name}.py")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # COMPAT_ONLY set in the environment filters the cases as --only does: never cache it
    only = only or env.get("COMPAT_ONLY") or None
    if only:
        env["COMPAT_ONLY"] = only
    oracle_out = workdir / f"{name}.oracle.pt"
    ours_out = workdir / f"{name}.ours.pt"
    cache = os.environ.get("COMPAT_ORACLE_CACHE")
    cached = Path(cache) / f"{name}.{section_digest(name)}.oracle.pt" if cache else None
    if cached is not None and cached.exists() and not only:
        oracle_out = cached  # oracle results of the same CASES (the oracle does not change)
    else:
        # the oracle must not see this checkout's packages
        oracle_env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        _run(oracle_python, [section_file, "oracle", str(oracle_out)], oracle_env, timeout)
        if cached is not None and not only:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(oracle_out.read_bytes())
            tmp.replace(cached)
    _run(sys.executable, [section_file, "ours", str(ours_out), str(oracle_out)], env, timeout)
    results = torch.load(ours_out, weights_only=False)
    return [{"section": name, "name": key, **row} for key, row in results.items()]


def summary(rows: list[dict]) -> str:
    counts = Counter(r["status"] for r in rows)
    return (
        f"compat: {_load_coverage().summary_phrase(rows)}, {len(rows)} configs compared, "
        f"{counts['ok']} ok, {counts['fixed']} differences fixed, "
        f"{counts['deviation']} deviations documented, {counts['skip']} skipped, "
        f"{counts['DIFF']} undocumented differences"
    )


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    text = json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def write_report(rows: list[dict], out: Path) -> str:
    line = summary(rows)
    out.mkdir(parents=True, exist_ok=True)
    clean = [{k: v for k, v in r.items() if k != "traceback"} for r in rows]
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps({"summary": line, "rows": clean}, indent=1, default=str))
    tmp.replace(out / "report.json")
    cols = [
        "section",
        "name",
        "class",
        "config",
        "keys_equal",
        "shapes_equal",
        "max_abs_diff",
        "status",
        "note",
    ]
    lines = [
        f"# 0.1.0 compatibility report\n\n{line}\n",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in clean:
        cls = r.get("class") or ""
        lines.append(
            "| "
            + " | ".join(
                _cell(cls.removeprefix("viscy_") if c == "class" else r.get(c)) for c in cols
            )
            + " |"
        )
    lines += _uncovered_lines(rows)
    tmp = out / "report.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out / "report.md")
    return line


def _uncovered_lines(rows: list[dict]) -> list[str]:
    coverage = _load_coverage()
    try:
        hit, spec = coverage.coverage(rows)
    except FileNotFoundError:
        return []
    missing = sorted(spec - hit)
    if not missing:
        return ["", "Every spec class/function is covered by a case."]
    lines = ["", f"## Spec classes/functions no case covers ({len(missing)})", ""]
    for package in sorted({p for p, _ in missing}):
        names = ", ".join(n for p, n in missing if p == package)
        lines.append(f"- {package}: {names}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--oracle",
        default=os.environ.get("VISCY_ORACLE"),
        help="python of the 0.1.0 venv (default: $VISCY_ORACLE)",
    )
    parser.add_argument("--sections", nargs="*", default=None, choices=available_sections())
    parser.add_argument("--only", default=None, help="run only cases whose name contains this")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for report.md/json")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)
    if not args.oracle:
        parser.error("no oracle: pass --oracle or set VISCY_ORACLE (see make_oracle_venv.sh)")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="viscy-compat-") as tmp:
        for name in args.sections or available_sections():
            start = time.perf_counter()
            rows += run_section(name, args.oracle, Path(tmp), args.only, args.timeout)
            print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    line = write_report(rows, args.out)
    for r in rows:
        if r["status"] == "DIFF":
            print(f"DIFF {r['section']}/{r['name']}: {r.get('note', '')}", file=sys.stderr)
    print(line)
    return 1 if any(r["status"] == "DIFF" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
