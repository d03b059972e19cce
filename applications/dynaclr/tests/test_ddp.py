"""DDP with 2 CPU processes (gloo): every rank gets the same number of batches and disjoint
samples, with Lightning's default ``use_distributed_sampler=True`` and with it off, for the
HCS, triplet and multi-experiment DataModules (or a setting is refused with a clear error).

One launch of two processes runs all six fits (real ``Trainer``, ``strategy="ddp"``) on one
tiny plate and writes what each rank read; the parametrized tests check it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import yaml

CASES = [
    (name, uds)
    for name in ("hcs", "triplet", "multi_experiment")
    for uds in (True, False)
]  # fmt: skip

_RANK_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    import torch
    from lightning.pytorch import LightningModule, Trainer

    root, out = sys.argv[1], sys.argv[2]
    rank = int(__import__("os").environ["RANK"])

    def hcs():
        from viscy_data import HCSDataModule
        return HCSDataModule(data_path=f"{root}/plate.zarr", source_channel="Phase3D",
                             target_channel="GFP", z_window_size=1, yx_patch_size=(32, 32),
                             split_ratio=0.75, batch_size=2, num_workers=0, pin_memory=False)

    def triplet():
        from viscy_data import TripletDataModule
        return TripletDataModule(data_path=f"{root}/plate.zarr", tracks_path=f"{root}/tracks",
                                 source_channel=["Phase3D", "GFP"], z_range=(0, 1),
                                 initial_yx_patch_size=(32, 32), final_yx_patch_size=(32, 32),
                                 split_ratio=0.75, batch_size=3, num_workers=1, time_interval=1)

    def multi_experiment():
        from dynaclr.datamodule import MultiExperimentDataModule
        return MultiExperimentDataModule(experiments_yaml=f"{root}/experiments.yml",
                                         val_experiments=["exp_b"], z_range=(0, 1),
                                         yx_patch_size=(32, 32), final_yx_patch_size=(32, 32),
                                         tau_range=(0.5, 1.0), batch_size=4, num_workers=1)

    class Recorder(LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.batches = 0
        def training_step(self, batch, batch_idx):
            self.batches += 1
            tensors = [v for v in (batch.values() if isinstance(batch, dict) else batch)
                       if torch.is_tensor(v)]
            return self.w * sum(t.float().mean() for t in tensors)
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    def record(dm, seen):
        build = dm.train_dataloader
        def train_dataloader():
            dataset = dm.train_dataset
            single = getattr(dataset, "__getitems__", None)
            lock = threading.Lock()
            def getitems(indices):
                with lock:
                    seen.extend(int(i) for i in indices)
                return single(indices) if single else [dataset[i] for i in indices]
            dataset.__getitems__ = getitems
            return build()
        dm.train_dataloader = train_dataloader

    results = {}
    for name, uds in json.loads(sys.argv[3]):
        seen = []
        dm = globals()[name]()
        record(dm, seen)
        model = Recorder()
        trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1,
                          use_distributed_sampler=uds, limit_val_batches=0,
                          num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False)
        key = f"{name}-{uds}"
        try:
            trainer.fit(model, datamodule=dm)
            results[key] = {"batches": model.batches, "indices": seen}
        except Exception as err:
            results[key] = {"error": f"{type(err).__name__}: {err}"}
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(results, f)
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    from viscy_data.synthetic import write_synthetic_plate

    root = tmp_path_factory.mktemp("ddp")
    plate = write_synthetic_plate(
        root / "plate.zarr",
        shape=(4, 2, 1, 64, 64),
        wells=(("A", "1"), ("B", "1")),
        fovs_per_well=4,
        tracks_path=root / "tracks",
        cells_per_fov=4,
        seed=7,
    )
    experiments = []
    for name, wells in (("exp_a", ["A/1"]), ("exp_b", ["B/1"])):
        experiments.append(
            {
                "name": name,
                "data_path": str(plate.path),
                "tracks_path": str(plate.tracks_path),
                "channel_names": ["Phase3D", "GFP"],
                "condition_wells": {"uninfected": wells},
                "interval_minutes": 30,
            }
        )
    (root / "experiments.yml").write_text(yaml.safe_dump({"experiments": experiments}))
    out = root / "out"
    out.mkdir()
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": "2",
        "NODE_RANK": "0",
        "PL_DISABLE_FORK": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RANK_SCRIPT, str(root), str(out), json.dumps(CASES)],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    logs = [p.communicate(timeout=600) for p in procs]
    for proc, (stdout, stderr) in zip(procs, logs, strict=True):
        assert proc.returncode == 0, stdout[-2000:] + stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "uds"), CASES, ids=[f"{n}-uds={u}" for n, u in CASES])
def test_ranks_get_equal_batches_and_disjoint_samples(ranks, name, uds):
    key = f"{name}-{uds}"
    r0, r1 = ranks[0][key], ranks[1][key]
    if "error" in r0 or "error" in r1:
        message = r0.get("error") or r1.get("error")
        # a refused setting must say which option to change
        assert "use_distributed_sampler" in message, message
        return
    assert r0["batches"] == r1["batches"] > 0, (r0["batches"], r1["batches"])
    overlap = set(r0["indices"]) & set(r1["indices"])
    assert not overlap, f"{key}: both ranks read samples {sorted(overlap)[:10]}"
