"""Writers killed mid-write (SIGKILL, real subprocesses) leave the previous output readable,
and a rerun completes (and removes the dead writer's temporaries)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from viscy_utils.callbacks._atomic import recover_path, replace_path, temporary_sibling

from .conftest import write_plate

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def _start(script: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"writer ended before the kill point: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("kill point never reached")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _leftovers(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]


def test_embedding_writer_killed_mid_write(tmp_path):
    anndata = pytest.importorskip("anndata")
    from viscy_utils.callbacks.embedding_writer import write_embedding_dataset

    out = tmp_path / "embeddings.zarr"
    old_obs = pd.DataFrame({"fov_name": ["A/1/0"] * 5, "track_id": range(5), "t": [0] * 5})
    write_embedding_dataset(out, np.ones((5, 8), np.float32), old_obs)
    script = f"""
        import numpy as np, pandas as pd
        from viscy_utils.callbacks.embedding_writer import write_embedding_dataset
        n = 200_000
        obs = pd.DataFrame({{"fov_name": ["A/1/0"] * n, "track_id": np.arange(n), "t": 0}})
        feats = np.random.default_rng(0).random((n, 64), dtype=np.float32)
        write_embedding_dataset({str(out)!r}, feats, obs, overwrite=True)
    """
    proc = _start(script, tmp_path)
    _kill_when(proc, lambda: any(p.name.startswith(".embeddings.zarr.tmp-") for p in
                                 tmp_path.iterdir()))  # fmt: skip
    # killed while write_zarr fills the temporary (it appears when the write starts)
    # the previous store is untouched and readable
    adata = anndata.read_zarr(out)
    assert adata.n_obs == 5 and float(adata.X.sum()) == 40.0
    assert _leftovers(out), "the killed writer's temporary should still be there"
    # a rerun completes and removes the dead writer's temporary
    new_obs = pd.DataFrame({"fov_name": ["B/1/0"] * 3, "track_id": range(3), "t": [1] * 3})
    write_embedding_dataset(out, np.zeros((3, 8), np.float32), new_obs, overwrite=True)
    assert anndata.read_zarr(out).n_obs == 3
    assert _leftovers(out) == []


def _metadata_files(plate: Path) -> list[Path]:
    return [p for p in plate.rglob("*") if p.name in ("zarr.json", ".zattrs", ".zgroup")]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_preprocess_killed_mid_write(tmp_path, version):
    from iohub.ngff import open_ome_zarr

    plate = write_plate(tmp_path / "plate.zarr", version=version, normalization=True)
    with open_ome_zarr(plate, mode="r") as node:
        before = {name: dict(pos.zattrs["normalization"]) for name, pos in node.positions()}
    marker = tmp_path / "one_fov_written"
    # pause (then get killed) after the first FOV's metadata is written, before the others
    script = f"""
        import pathlib, time
        from viscy_utils import preprocess
        original = preprocess.PlateStatistics.fov_metadata
        calls = []
        def fov_metadata(self, name):
            if calls:
                pathlib.Path({str(marker)!r}).touch()
                time.sleep(120)
            calls.append(name)
            return original(self, name)
        preprocess.PlateStatistics.fov_metadata = fov_metadata
        preprocess.preprocess_main(["--data_path", {str(plate)!r}, "--grid_spacing", "4",
                                    "--no_progress"])
    """
    proc = _start(script, tmp_path)
    _kill_when(proc, marker.exists)
    for path in _metadata_files(plate):
        json.loads(path.read_text())  # every metadata file whole (no truncated JSON)
    with open_ome_zarr(plate, mode="r") as node:
        after = {name: dict(pos.zattrs["normalization"]) for name, pos in node.positions()}
        for _, pos in node.positions():
            assert pos["0"].shape == (3, 2, 2, 32, 32)
    changed = [name for name in before if after[name] != before[name]]
    assert len(changed) <= 1  # FOVs not reached keep their previous statistics
    assert set(after) == set(before)
    # a rerun completes
    from viscy_utils.preprocess import preprocess_main

    assert preprocess_main(["--data_path", str(plate), "--grid_spacing", "4", "--no_progress"]) == 0
    with open_ome_zarr(plate, mode="r") as node:
        final = {name: dict(pos.zattrs["normalization"]) for name, pos in node.positions()}
    assert all(set(final[n]) == {"Phase3D", "GFP"} for n in final)
    assert final != before


def test_replace_path_directory_swap_and_recovery(tmp_path):
    target = tmp_path / "store"
    target.mkdir()
    (target / "v").write_text("old")
    tmp = temporary_sibling(target)
    tmp.mkdir()
    (tmp / "v").write_text("new")
    with pytest.raises(FileExistsError, match="overwrite"):
        replace_path(tmp, target, overwrite=False)
    replace_path(tmp, target, overwrite=True)
    assert (target / "v").read_text() == "new" and _leftovers(target) == []
    # a writer killed between moving the old output aside and moving the new one in
    aside = tmp_path / ".store.old-999999999-deadbeef"
    target.rename(aside)
    recover_path(target)
    assert (target / "v").read_text() == "new" and not aside.exists()
