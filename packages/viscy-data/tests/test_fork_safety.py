"""Fork safety: reading data in a process never makes a later fork of it abort.

tensorstore aborts a forked child that uses it after the parent had started it. The reader
settles its backend per process (zarr-python in such a child), and our DataModules start
their own workers with ``forkserver`` once the process has used tensorstore. Covered: a plain
``fork`` after reads, DataLoader workers under ``fork`` and under the default start method
after the parent read data, and a 2-process DDP run launched by ``fork`` (``ddp_fork``).
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from viscy_data import HCSDataModule
from viscy_data._reader import PatchBox, PatchReader, tensorstore_used_in_this_process

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("tensorstore") is None, reason="needs viscy-data[triplet]"
    ),
    pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork"),
]

BOX = PatchBox("A/1/0", 1, (0, 1), (2, 5), (8, 40), (16, 48))


def _dm(plate, **kwargs) -> HCSDataModule:
    options = {
        "data_path": str(plate.path),
        "source_channel": "Phase3D",
        "target_channel": "GFP",
        "z_window_size": 3,
        "batch_size": 4,
        "num_workers": 0,
        "yx_patch_size": (32, 32),
        "pin_memory": False,
    }
    options.update(kwargs)
    return HCSDataModule(**options)


def _read_in_child(reader: PatchReader, path: str, queue) -> None:
    inherited = reader.read_patch(BOX)  # the parent's reader, inherited through fork
    fresh = PatchReader(path).read_patch(BOX)
    queue.put((reader.backend, inherited.tolist(), fresh.tolist()))


def test_fork_after_reads(hcs_plate_v5):
    reader = PatchReader(hcs_plate_v5.path, backend="tensorstore")
    expected = reader.read_patch(BOX)
    assert tensorstore_used_in_this_process()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(reader, str(hcs_plate_v5.path), queue))
    child.start()
    backend, inherited, fresh = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0  # a child using tensorstore here would die of SIGABRT (-6)
    assert backend == "zarr"  # settled per process: tensorstore cannot run in this child
    np.testing.assert_array_equal(np.array(inherited, dtype=expected.dtype), expected)
    np.testing.assert_array_equal(np.array(fresh, dtype=expected.dtype), expected)
    # the parent keeps tensorstore and its handles
    assert reader.backend == "tensorstore"
    np.testing.assert_array_equal(reader.read_patch(BOX), expected)


def _batches(loader) -> list[dict]:
    return [{k: batch[k].clone() for k in ("source", "target")} for batch in loader]


@pytest.mark.parametrize("context", ["fork", None])
def test_dataloader_workers_after_the_parent_read_data(hcs_plate_v5, context):
    dm = _dm(hcs_plate_v5, num_workers=2, multiprocessing_context=context)
    dm.setup("fit")
    dm.val_dataset.__getitems__([0, 1])  # tensorstore now runs in this process
    assert tensorstore_used_in_this_process()
    reference = _dm(hcs_plate_v5)
    reference.setup("fit")
    expected = _batches(reference.val_dataloader())
    loader = dm.val_dataloader()
    # fork when asked; otherwise workers start from a forkserver and keep tensorstore
    assert loader.multiprocessing_context.get_start_method() == (context or "forkserver")
    got = _batches(loader)
    assert len(got) == len(expected) > 1
    for mine, ref in zip(got, expected, strict=True):
        for key in ("source", "target"):
            torch.testing.assert_close(mine[key], ref[key], rtol=0, atol=0)


class _Recorder(LightningModule):
    def __init__(self, out_dir: str) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.layer = torch.nn.Conv3d(1, 1, 1)
        self.sums: list[float] = []

    def training_step(self, batch, batch_idx):
        self.sums.append(float(batch["source"].double().sum()))
        return (self.layer(batch["source"]) - batch["target"]).abs().mean()

    def on_train_end(self) -> None:
        path = os.path.join(self.out_dir, f"rank{self.global_rank}.json")
        with open(path, "w") as f:
            json.dump({"pid": os.getpid(), "sums": self.sums}, f)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_ddp_launched_by_fork_after_the_parent_read_data(hcs_plate_v5, tmp_path):
    dm = _dm(hcs_plate_v5, batch_size=2)
    dm.setup("fit")
    dm.train_dataset.__getitems__([0])  # the notebook user looked at a sample first
    assert tensorstore_used_in_this_process()
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_fork",
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_Recorder(str(tmp_path)), datamodule=dm)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    pids = {r["pid"] for r in ranks}
    assert len(pids) == 2 and os.getpid() not in pids  # two forked rank processes
    for r in ranks:  # both forked ranks read their batches (no abort, no silent stop)
        assert len(r["sums"]) == 2 and all(np.isfinite(r["sums"])) and min(r["sums"]) > 0
    assert ranks[0]["sums"] != ranks[1]["sums"]  # each rank its own shard
