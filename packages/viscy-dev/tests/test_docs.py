"""The documentation site: API pages match ``__all__``, docstrings document parameters, and the
guides' runnable code blocks run (on a synthetic plate)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from viscy_dev.docs import api_pages as gen_api
from viscy_dev.docs import build
from viscy_dev.docs import docstrings as check_docstrings
from viscy_dev.docs._root import ROOT

PACKAGES = list(gen_api.installed_packages().items())


@pytest.mark.parametrize(("distribution", "package"), PACKAGES)
def test_api_page_lists_exactly_the_public_names(distribution: str, package: str) -> None:
    page = ROOT / "docs" / "api" / f"{distribution}.md"
    assert page.exists(), f"{page} is missing: run 'uv run python -m viscy_dev.docs api'"
    listed = re.findall(r"^      heading: (\S+)$", page.read_text(), flags=re.MULTILINE)
    public = sorted(importlib.import_module(package).__all__)
    assert sorted(listed) == public, "run 'uv run python -m viscy_dev.docs api'"


@pytest.mark.parametrize(("distribution", "package"), PACKAGES)
def test_api_page_is_up_to_date(distribution: str, package: str) -> None:
    page = ROOT / "docs" / "api" / f"{distribution}.md"
    assert page.read_text() == gen_api.render_page(distribution, package)


def test_every_api_page_is_in_the_navigation() -> None:
    config = (ROOT / "zensical.toml").read_text()
    for distribution, _ in PACKAGES:
        assert f'"api/{distribution}.md"' in config


@pytest.mark.parametrize("package", [package for _, package in PACKAGES])
def test_public_docstrings_document_their_parameters(package: str) -> None:
    assert check_docstrings.problems(package) == []


def test_parameter_section_parser() -> None:
    doc = """Do a thing.

    Parameters
    ----------
    a, b : int
        Two numbers.
    *extra : str
        Rest.

    Returns
    -------
    c : int
        Not a parameter.
    """
    assert check_docstrings.documented_parameters(doc) == {"a", "b", "extra"}


def test_build_warnings_are_found_in_a_log() -> None:
    log = "Build started\ngriffe: x.py:3: Parameter 'c' does not appear\nNo issues found\n"
    assert build.build_warnings(log) == ["griffe: x.py:3: Parameter 'c' does not appear"]


def _runnable_blocks() -> list[tuple[str, str]]:
    blocks = []
    # getting-started writes the plate the guides read, so it runs first
    pages = [ROOT / "docs" / "getting-started.md", *sorted((ROOT / "docs" / "guides").glob("*.md"))]
    for page in pages:
        text = page.read_text()
        for match in re.finditer(r"<!-- run -->\n```python\n(.*?)```", text, flags=re.DOTALL):
            blocks.append((page.relative_to(ROOT).as_posix(), match.group(1)))
    return blocks


def test_guide_code_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _runnable_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for where, code in blocks:
        try:
            exec(compile(code, where, "exec"), namespace)
        except Exception as err:  # pragma: no cover - the message is the point
            raise AssertionError(f"code block in {where} failed: {err!r}") from err
