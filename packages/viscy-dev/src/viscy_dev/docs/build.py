"""Build the documentation site strictly: any warning fails the build.

Usage: ``uv run python -m viscy_dev.docs build``. It checks that the API pages match every
package's ``__all__`` and that every public class and function documents its parameters, then
runs ``zensical build --strict --clean`` and fails on any warning it prints (Zensical's strict
mode covers links and references; griffe's docstring warnings are caught here).
"""

from __future__ import annotations

import subprocess
import sys

from viscy_dev.docs import api_pages, docstrings
from viscy_dev.docs._root import ROOT

_WARNING_PREFIXES = ("griffe:", "mkdocstrings:", "Warning:", "WARNING")


def build_warnings(output: str) -> list[str]:
    """Lines of a Zensical build log that report a problem."""
    return [line for line in output.splitlines() if line.lstrip().startswith(_WARNING_PREFIXES)]


def main() -> int:
    """Run every check and the build; exit status 1 on any problem.

    Zensical runs in a subprocess while the checks (which import every package) run here,
    so the two overlap.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "zensical", "build", "--strict", "--clean"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    failed = False
    try:
        if api_pages.main(["--check"]) != 0:
            failed = True
        if docstrings.main() != 0:
            failed = True
    finally:
        output, _ = proc.communicate()
    warnings = build_warnings(output)
    for line in warnings:
        print(line)
    if proc.returncode != 0 or warnings:
        print(output[-4000:] if proc.returncode != 0 else "", end="")
        print(f"docs build failed: exit {proc.returncode}, {len(warnings)} warning(s)")
        failed = True
    else:
        print(f"docs built into {ROOT / 'site'} with no warnings")
    return 1 if failed else 0
