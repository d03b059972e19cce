"""The tutorials (EX-04, EX-07) run, at small sizes, and their notebooks match the scripts."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TUTORIALS = ("quickstart", "infection_analysis")


@pytest.mark.parametrize("name", TUTORIALS)
def test_notebook_is_generated_from_the_script(name):
    jupytext = pytest.importorskip("jupytext")
    script = jupytext.read(EXAMPLES / f"{name}.py")
    notebook = jupytext.read(EXAMPLES / f"{name}.ipynb")
    assert [c.source for c in notebook.cells] == [c.source for c in script.cells], (
        f"{name}.ipynb is out of date: run `jupytext --to ipynb {name}.py` in examples/"
    )
    assert [c.cell_type for c in notebook.cells] == [c.cell_type for c in script.cells]


def test_quickstart_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNACLR_TUTORIAL_SIZE", "small")
    monkeypatch.setenv("DYNACLR_TUTORIAL_OUT", str(tmp_path))
    namespace = runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    assert (tmp_path / "batch.png").exists()
    assert (tmp_path / "evaluation" / "report.md").exists()
    assert 0.0 <= namespace["probe_accuracy"] <= 1.0
    assert namespace["metrics"]["models"]["embeddings"]["probe"]["infection_state"]["n_groups"] == 4


def test_infection_analysis_runs(embedding_study, tmp_path, monkeypatch):
    monkeypatch.setenv("DYNACLR_EMBEDDINGS", str(embedding_study.signal))
    monkeypatch.setenv("DYNACLR_ANNOTATIONS", str(embedding_study.annotations))
    monkeypatch.setenv("DYNACLR_TUTORIAL_OUT", str(tmp_path))
    namespace = runpy.run_path(str(EXAMPLES / "infection_analysis.py"), run_name="__main__")
    assert namespace["accuracy"] > 0.85  # the fixture's embeddings carry the state
    for name in ("infected_fraction.png", "transition_times.png", "transitions.csv"):
        assert (tmp_path / name).exists(), name
    transitions = pd.read_csv(tmp_path / "transitions.csv")
    uninfected = transitions[transitions["condition"] == "uninfected"]
    assert uninfected["annotated_transition"].isna().all()
    fraction = namespace["fraction"]
    assert fraction["infected"].iloc[-1] > fraction["uninfected"].iloc[-1]
