"""The documentation site: API pages match ``__all__``, docstrings document parameters, and the
guides' runnable code blocks run (on a synthetic plate)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from viscy_dev.docs import api_pages as gen_api
from viscy_dev.docs import build, examples, figures
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


def test_guide_code_blocks_run_and_commands_exist(tmp_path: Path) -> None:
    runnable = [b for page in examples.pages() for b in examples.blocks(page) if b.run]
    assert {b.language for b in runnable} == {"python", "bash"}
    assert examples.run_all(tmp_path) == []


def test_a_documented_option_that_does_not_exist_is_found() -> None:
    assert examples.option_problems(["dynaclr", "reduce", "x.zarr", "--method", "pca"]) == []
    assert examples.option_problems(["dynaclr", "reduce", "x.zarr", "--methods", "pca"]) == [
        "`dynaclr reduce` has no option --methods"
    ]
    assert examples.option_problems(["dynaclr", "reduse", "x.zarr"]) == [
        "`dynaclr reduse`: no such command"
    ]
    assert examples.option_problems(["dynaclr", "plot", "scatter", "a.zarr", "--out", "f"]) == []


def test_shell_blocks_are_split_into_commands() -> None:
    code = "uv run dynaclr reduce a.zarr \\\n    --method pca  # joint\n\n# only a comment\n"
    assert examples.command_lines(code) == [["dynaclr", "reduce", "a.zarr", "--method", "pca"]]


def test_demo_figures_are_small_and_shown(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "getting-started.md").read_text()
    for name in figures.DEMOS:
        snippet = ROOT / "docs" / "assets" / "demo" / f"{name}.md"
        assert f'--8<-- "docs/assets/demo/{name}.md"' in page
        images = re.findall(r"\]\(assets/demo/([^)]+\.png)\)", snippet.read_text())
        assert images, f"{snippet} shows no figure"
        for image in images:
            size = (ROOT / "docs" / "assets" / "demo" / image).stat().st_size
            assert size <= figures.MAX_BYTES, f"{image}: {size} bytes"


def test_figures_are_collected_shrunk_and_stale_ones_removed(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    out, assets = tmp_path / "demo", tmp_path / "assets"
    (out / "figures").mkdir(parents=True)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (420, 420, 3), dtype="uint8")  # incompressible: > budget
    Image.fromarray(noise).save(out / "figures" / "scatter.png")
    assert (out / "figures" / "scatter.png").stat().st_size > figures.MAX_BYTES
    assets.mkdir()
    (assets / "dynaclr-old.png").write_bytes(b"stale")
    printed = "| x |\n|---|\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nwall time 3 s\n"
    demo = figures.DEMOS["dynaclr"]
    written = figures.collect(demo, out, printed, "note", assets=assets)
    png = assets / "dynaclr-scatter.png"
    assert png in written and png.stat().st_size <= figures.MAX_BYTES
    assert not (assets / "dynaclr-old.png").exists()
    page = (assets / "dynaclr.md").read_text()
    assert "| a | b |\n|---|---|\n| 1 | 2 |" in page
    assert "![figures/scatter.png](assets/demo/dynaclr-scatter.png)" in page
    with pytest.raises(ValueError, match="no Markdown table"):
        figures.printed_table("no table here")


@pytest.mark.parametrize(
    ("page", "source", "first_line"),
    [("migration.md", "COMPATIBILITY.md", 2), ("changelog.md", "CHANGELOG.md", 3)],
)
def test_included_files_lose_only_their_title(page: str, source: str, first_line: int) -> None:
    assert f'--8<-- "{source}:{first_line}:"' in (ROOT / "docs" / page).read_text()
    lines = (ROOT / source).read_text().splitlines()
    skipped, kept = lines[: first_line - 1], lines[first_line - 1 :]
    assert skipped[0].startswith("# ") and all(not line.strip() for line in skipped[1:])
    assert not any(line.startswith("# ") for line in kept), f"a second title in {source}"


def test_missing_images_of_a_built_site_are_found(tmp_path: Path) -> None:
    (tmp_path / "guide").mkdir()
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "a.png").write_bytes(b"png")
    html = (
        '<img alt="a" src="../assets/a.png"><img src="../assets/b.png"><img src="https://x/y.png">'
    )
    (tmp_path / "guide" / "index.html").write_text(html)
    assert build.missing_images(tmp_path) == [
        "guide/index.html: image ../assets/b.png does not exist"
    ]


def test_the_documented_experiments_registry_loads(tmp_path: Path) -> None:
    from dynaclr import ExperimentRegistry

    page = ROOT / "docs" / "guides" / "multi-experiment.md"
    registries = [b.code for b in examples.blocks(page) if b.language == "yaml"]
    assert registries and all("experiments:" in code for code in registries)
    for i, code in enumerate(registries):
        path = tmp_path / f"experiments_{i}.yml"
        path.write_text(code)
        registry = ExperimentRegistry.from_yaml(path, check_paths=False)
        assert [e.name for e in registry.experiments] == ["exp_a", "exp_b"]
