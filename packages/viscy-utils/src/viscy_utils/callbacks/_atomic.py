"""Write a directory store under a temporary name, then move it into place."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A not-yet-existing hidden path next to ``path`` (same filesystem, so rename is atomic)."""
    return path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"


def replace_path(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move ``tmp`` to ``path``; an existing ``path`` is replaced only if ``overwrite``.

    The old output is first renamed aside and deleted only after the new one is
    in place, so a failure never leaves neither.
    """
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        old = temporary_sibling(path)
        path.rename(old)
        tmp.rename(path)
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    else:
        tmp.rename(path)


def remove_path(path: Path) -> None:
    """Delete a file or directory if it exists."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
