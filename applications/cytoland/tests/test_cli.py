"""The ``cytoland`` console script: lazy, answers --help without torch."""

from __future__ import annotations

import subprocess
import sys

from cytoland.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict", "export", "demo"):
        assert name in COMMANDS and f"  {name}" in out


def test_unknown_command_exits_2(capsys):
    assert main(["stain"]) == 2
    assert "unknown command 'stain'" in capsys.readouterr().err


def test_help_does_not_import_torch():
    code = (
        "import sys; from cytoland.cli import main; main(['--help']); "
        "heavy = [m for m in ('torch', 'lightning', 'monai') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)
