import pytest
import yaml

from viscy_utils.cli_utils import format_markdown_table, load_config


def test_load_config_merges_bases(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "root.yml").write_text(
        yaml.safe_dump({"trainer": {"max_epochs": 5, "devices": 1}, "seed_everything": 1})
    )
    (tmp_path / "common" / "model.yml").write_text(
        yaml.safe_dump(
            {"base": "root.yml", "model": {"lr": 0.1, "layers": [1, 2]}, "trainer": {"devices": 2}}
        )
    )
    (tmp_path / "fit.yml").write_text(
        yaml.safe_dump({"base": ["common/model.yml"], "model": {"layers": [3]}})
    )
    cfg = load_config(tmp_path / "fit.yml")
    assert cfg == {
        "trainer": {"max_epochs": 5, "devices": 2},
        "seed_everything": 1,
        "model": {"lr": 0.1, "layers": [3]},
    }


def test_load_config_errors(tmp_path):
    (tmp_path / "a.yml").write_text("base: b.yml\n")
    (tmp_path / "b.yml").write_text("base: a.yml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "a.yml")
    (tmp_path / "c.yml").write_text("base: missing.yml\n")
    with pytest.raises(FileNotFoundError, match="missing.yml"):
        load_config(tmp_path / "c.yml")


def test_format_markdown_table():
    text = format_markdown_table({"accuracy": 0.912345, "n": 10}, title="Probe")
    assert text.splitlines() == [
        "## Probe",
        "",
        "| metric | value |",
        "| --- | --- |",
        "| accuracy | 0.9123 |",
        "| n | 10 |",
    ]
    rows = format_markdown_table([{"a": 1, "b": "x|y"}, {"a": 2, "c": 0.5}])
    assert rows.splitlines()[0] == "| a | b | c |"
    assert rows.splitlines()[2] == "| 1 | x\\|y |  |"
