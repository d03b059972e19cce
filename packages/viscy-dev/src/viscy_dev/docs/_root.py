"""The workspace root: the folder holding ``zensical.toml`` (found from here or the cwd)."""

from __future__ import annotations

from pathlib import Path


def find_root() -> Path:
    """The nearest folder above this file (or the working directory) with ``zensical.toml``."""
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "zensical.toml").is_file():
                return folder
    raise FileNotFoundError("no zensical.toml above viscy_dev or the working directory")


ROOT = find_root()
