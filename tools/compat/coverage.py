"""Which public classes and functions of the 0.1.0 spec some harness case covers.

    python tools/compat/coverage.py                 # counts per package
    python tools/compat/coverage.py --missing       # and the names no case covers
    python tools/compat/coverage.py --package viscy_transforms --missing

The spec is ``api_0.1.0.md`` (top-level names) and ``api_0.1.0_modules.md`` (subpackage
surfaces) in ``$VISCY_SPEC_DIR`` (default ``../shared/spec`` beside the repository). Only
entries listed as ``class`` or ``function`` and defined in a ``viscy_*`` package count
(constants and typing aliases do not). A spec name is identified by its package and its
name, so ``viscy_transforms.BatchedRandSharpend`` and
``viscy_transforms._sharpen.BatchedRandSharpend`` are one name.

A case covers the names in its ``covers`` field (a dotted name or a list of them) and its
``class``; rows of a run count the same way (sections that fill ``class`` only in their
rows are counted when they have run). Section files are read without running them: their
``CASES`` must be importable with torch alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = HERE / "sections"
SPEC_FILES = ("api_0.1.0.md", "api_0.1.0_modules.md")

_TOP = re.compile(r"^- (class|function) `([\w.]+?)`?(?:\(|`)")
_MODULE_ENTRY = re.compile(r"^- (class|function) `(\w+)` \(defined in `([\w.]+)`\)")


def spec_dir() -> Path:
    default = HERE.parents[2] / "shared" / "spec"
    return Path(os.environ.get("VISCY_SPEC_DIR", default))


def key(dotted: str) -> tuple[str, str]:
    """``pkg.any.module.Name`` -> ``(pkg, Name)``."""
    parts = dotted.split(".")
    return parts[0], parts[-1]


def spec_names(directory: Path | None = None) -> dict[tuple[str, str], str]:
    """``(package, name) -> kind`` of every spec class/function in a ``viscy_*`` package."""
    directory = directory or spec_dir()
    names: dict[tuple[str, str], str] = {}
    for file_name in SPEC_FILES:
        path = directory / file_name
        if not path.exists():
            raise FileNotFoundError(f"spec file {path} not found (set VISCY_SPEC_DIR)")
        for line in path.read_text().splitlines():
            match = _MODULE_ENTRY.match(line)
            if match:
                kind, name, defined_in = match.groups()
                dotted = f"{defined_in}.{name}"
            elif match := _TOP.match(line):
                kind, dotted = match.groups()
            else:
                continue
            if dotted.startswith("viscy_"):
                names.setdefault(key(dotted), kind)
    return names


def _load_cases(path: Path) -> list[dict]:
    sys.path.insert(0, str(HERE))
    try:
        spec = importlib.util.spec_from_file_location(f"compat_cov_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(HERE))
    return list(getattr(module, "CASES", []))


def declared(entry: dict) -> set[str]:
    """Dotted names a case or a row declares it covers (``covers`` and ``class``)."""
    out: set[str] = set()
    covers = entry.get("covers") or []
    out.update([covers] if isinstance(covers, str) else covers)
    if entry.get("class"):
        out.add(entry["class"])
    return out


def covered_names(rows: Iterable[dict] = (), sections: Iterable[str] | None = None) -> set[str]:
    """Dotted names covered by the cases of ``sections`` (default: all) and by ``rows``."""
    names: set[str] = set()
    files = sorted(SECTIONS.glob("*.py"))
    for path in files:
        if path.stem.startswith("_") or (sections is not None and path.stem not in sections):
            continue
        for case in _load_cases(path):
            names |= declared(case)
    for row in rows:
        if row.get("status") != "skip":
            names |= declared(row)
    return names


def coverage(
    rows: Iterable[dict] = (), directory: Path | None = None
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(covered, all) spec names, as ``(package, name)`` pairs."""
    spec = set(spec_names(directory))
    hit = {key(n) for n in covered_names(rows)} & spec
    return hit, spec


def summary_phrase(rows: Iterable[dict] = ()) -> str:
    """``"N of M spec classes/functions covered"``, or why it cannot be counted."""
    try:
        hit, spec = coverage(rows)
    except FileNotFoundError as exc:
        return f"spec coverage unknown ({exc})"
    return f"{len(hit)} of {len(spec)} spec classes/functions covered"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--missing", action="store_true", help="list the uncovered names")
    parser.add_argument("--package", default=None, help="only this package (e.g. viscy_data)")
    args = parser.parse_args(argv)
    hit, spec = coverage()
    packages = sorted({p for p, _ in spec})
    for package in packages:
        if args.package and package != args.package:
            continue
        names = sorted(n for p, n in spec if p == package)
        done = [n for n in names if (package, n) in hit]
        print(f"{package}: {len(done)} of {len(names)} covered")
        if args.missing:
            for name in names:
                if (package, name) not in hit:
                    print(f"  - {name}")
    print(f"total: {len(hit)} of {len(spec)} spec classes/functions covered")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
