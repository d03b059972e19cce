"""``dynaclr fit/validate/test/predict``: delegate to the VisCy Lightning CLI."""

from __future__ import annotations


def _run(subcommand: str, argv: list[str]) -> int:
    from viscy_utils.cli import main as viscy_main

    result = viscy_main([subcommand, *argv])
    return 0 if result is None else int(result)


def fit(argv: list[str]) -> int:
    """``dynaclr fit -c fit.yml``."""
    return _run("fit", argv)


def validate(argv: list[str]) -> int:
    """``dynaclr validate -c config.yml``."""
    return _run("validate", argv)


def test(argv: list[str]) -> int:
    """``dynaclr test -c config.yml``."""
    return _run("test", argv)


def predict(argv: list[str]) -> int:
    """``dynaclr predict -c predict.yml``."""
    return _run("predict", argv)


def export(argv: list[str]) -> int:
    """``dynaclr export -c export_onnx.yml``."""
    return _run("export", argv)
