"""``cytoland check`` on the example configs against the demo plate."""

from __future__ import annotations

from pathlib import Path

import yaml


def _config(demo_run, tmp_path, **data_args):
    root, _ = demo_run
    example = Path(__file__).parents[1] / "examples" / "configs" / "fit_2d.yml"
    config = yaml.safe_load(example.read_text())
    config["data"]["init_args"]["data_path"] = str(root / "cytoland_demo" / "plate.zarr")
    config["data"]["init_args"].update(data_args)
    path = tmp_path / "fit.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_check_passes_on_the_example_config(demo_run, tmp_path, capsys):
    from cytoland.cli import main

    assert main(["check", "-c", str(_config(demo_run, tmp_path))]) == 0


def test_check_names_an_unknown_target_channel(demo_run, tmp_path, capsys):
    from cytoland.cli import main

    config = _config(demo_run, tmp_path, target_channel=["Nuclei", "Actin"])
    assert main(["check", "-c", str(config)]) != 0
    out = capsys.readouterr().out
    assert "Actin" in out
