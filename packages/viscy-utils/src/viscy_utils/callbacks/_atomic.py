"""Write a file or directory store under a temporary name, then move it into place.

Nothing the user owns is half-written: a writer builds its output at
:func:`temporary_sibling` and calls :func:`replace_path`. On Linux an existing output is
swapped with the new one in one ``renameat2(RENAME_EXCHANGE)`` call, so at every instant
``path`` is either the complete old output or the complete new one, even under SIGKILL.
Elsewhere the old output is renamed aside first; :func:`recover_path` (called by
:func:`temporary_sibling`) puts it back if the process died between the two renames.
Temporaries of processes that no longer run are deleted on the next write.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import uuid
from pathlib import Path

_RENAME_EXCHANGE = 2  # linux/fs.h
_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux); False where unsupported."""
    global _libc
    if not hasattr(os, "sched_getaffinity"):  # not Linux
        return False
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _libc.renameat2  # noqa: B018  (glibc >= 2.28)
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    at_fdcwd = -100
    result = _libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        errno = ctypes.get_errno()
        if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: file system cannot exchange
            return False
        raise OSError(errno, os.strerror(errno), str(b))
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _siblings(path: Path, kind: str) -> list[tuple[Path, int]]:
    """``(path, owner pid)`` of this path's ``tmp`` or ``old`` siblings."""
    found = []
    prefix = f".{path.name}.{kind}-"
    if not path.parent.is_dir():
        return found
    for entry in path.parent.iterdir():
        if entry.name.startswith(prefix):
            pid_text = entry.name[len(prefix) :].split("-", 1)[0]
            if pid_text.isdigit():
                found.append((entry, int(pid_text)))
    return found


def recover_path(path: Path) -> None:
    """Restore ``path`` from an aside copy left by a killed writer; drop dead temporaries."""
    path = Path(path)
    for old, pid in _siblings(path, "old"):
        if _pid_alive(pid) and pid != os.getpid():
            continue
        if not path.exists():
            old.rename(path)  # the writer died between moving the old output and the new one
        else:
            remove_path(old)
    for tmp, pid in _siblings(path, "tmp"):
        if not _pid_alive(pid):
            remove_path(tmp)


def temporary_sibling(path: Path, kind: str = "tmp") -> Path:
    """A not-yet-existing hidden path next to ``path`` (same filesystem, so rename is atomic).

    The name carries this process's id, so a later run can tell a dead writer's leftovers.
    """
    path = Path(path)
    if kind == "tmp":
        recover_path(path)
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def replace_path(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move ``tmp`` to ``path``; an existing ``path`` is replaced only if ``overwrite``.

    An existing output is exchanged with the new one atomically where the OS allows it,
    else renamed aside and deleted only after the new one is in place.
    """
    tmp, path = Path(tmp), Path(path)
    if not (path.exists() or path.is_symlink()):
        tmp.rename(path)
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if path.is_file() and tmp.is_file():
        os.replace(tmp, path)  # atomic for files everywhere
        return
    if _exchange(tmp, path):
        remove_path(tmp)  # now holds the old output
        return
    old = temporary_sibling(path, kind="old")
    path.rename(old)
    tmp.rename(path)
    remove_path(old)


def remove_path(path: Path) -> None:
    """Delete a file or directory if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
