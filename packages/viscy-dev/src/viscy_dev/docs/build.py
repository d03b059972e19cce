"""Build the documentation site strictly: any warning fails the build.

Usage: ``uv run python -m viscy_dev.docs build``. It checks that the API pages match every
package's ``__all__`` and that every public class and function documents its parameters, then
runs ``zensical build --strict --clean`` and fails on any warning it prints (Zensical's strict
mode covers links and anchors; griffe's docstring warnings and images the pages show but
the site lacks are caught here).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from viscy_dev.docs import api_pages, docstrings
from viscy_dev.docs._root import ROOT

_WARNING_PREFIXES = ("griffe:", "mkdocstrings:", "Warning:", "WARNING")
_IMG_SRC = re.compile(r"<img[^>]*\ssrc=\"([^\"]+)\"")


def missing_images(site: Path) -> list[str]:
    """Images the built pages show that are not in the site (Zensical checks page links and
    anchors, not images)."""
    missing = []
    for page in sorted(site.rglob("*.html")):
        for src in _IMG_SRC.findall(page.read_text(errors="replace")):
            if src.startswith(("http:", "https:", "data:", "//")):
                continue
            target = (page.parent / src.split("#")[0].split("?")[0]).resolve()
            if not target.is_file():
                missing.append(f"{page.relative_to(site)}: image {src} does not exist")
    return missing


def build_warnings(output: str) -> list[str]:
    """Lines of a Zensical build log that report a problem."""
    return [line for line in output.splitlines() if line.lstrip().startswith(_WARNING_PREFIXES)]


def main(argv: list[str] | None = None) -> int:
    """Run every check and the build; exit status 1 on any problem.

    Zensical runs in a subprocess while the checks (which import every package) run here,
    so the two overlap. ``--no-checks`` leaves the API-page and docstring checks to the test
    suite (``test_docs.py`` runs the same ones) and only builds, still strictly.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-checks", action="store_true", help="skip the API-page and docstring checks"
    )
    args = parser.parse_args(argv)
    proc = subprocess.Popen(
        [sys.executable, "-m", "zensical", "build", "--strict", "--clean"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    failed = False
    try:
        if not args.no_checks and api_pages.main(["--check"]) != 0:
            failed = True
        if not args.no_checks and docstrings.main() != 0:
            failed = True
    finally:
        output, _ = proc.communicate()
    warnings = build_warnings(output)
    if proc.returncode == 0:
        warnings += missing_images(ROOT / "site")
    for line in warnings:
        print(line)
    if proc.returncode != 0 or warnings:
        print(output[-4000:] if proc.returncode != 0 else "", end="")
        print(f"docs build failed: exit {proc.returncode}, {len(warnings)} warning(s)")
        failed = True
    else:
        print(f"docs built into {ROOT / 'site'} with no warnings")
    return 1 if failed else 0
