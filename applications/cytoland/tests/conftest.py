"""Shared fixtures: one quick demo run (its plate, configs and checkpoint) per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``cytoland demo --quick`` into ``<tmp>/cytoland_demo`` (what the example configs read)."""
    from cytoland.demo import DemoConfig, run_demo

    root = tmp_path_factory.mktemp("cytoland")
    result = run_demo(root / "cytoland_demo", DemoConfig.quick())
    return root, result
