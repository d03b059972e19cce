"""A Lightning profiler that measures what a training benchmark reports (``training.py``).

Set as ``trainer.profiler`` (``class_path: benchmarks._training_probe.TrainingProbe``, the
repository root on ``PYTHONPATH``), it records, for every training step after ``warmup_steps``:

* the time the loop waits for the next batch (Lightning's ``train_dataloader_next`` action:
  ``next()`` on the DataLoader, i.e. time the loader did not have a batch ready),
* the step time (from one fetch to the next),
* on CUDA, the GPU utilisation sampled every ``nvml_interval_s`` with NVML
  (``nvidia-ml-py``, imported only there).

The CUDA stream is synchronized once at the start and once at the end of the timed window,
so host-side timing covers the GPU work it queued. The result is written as JSON to
``out_path`` when training ends.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.profilers import Profiler

_FETCH = "train_dataloader_next"
_STEP = "run_training_batch"


class _NvmlSampler:
    """Samples GPU utilisation (percent) of one device in a background thread."""

    def __init__(self, device_index: int, interval_s: float) -> None:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        self.name = pynvml.nvmlDeviceGetName(self._handle)
        if isinstance(self.name, bytes):
            self.name = self.name.decode()
        self.interval_s = interval_s
        self.samples: list[tuple[float, int, int]] = []  # (time, gpu %, memory used bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            rates = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
            self.samples.append((time.perf_counter(), int(rates.gpu), int(memory.used)))
            self._stop.wait(self.interval_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._nvml.nvmlShutdown()


class TrainingProbe(Profiler):
    """Records data wait, step times and GPU utilisation of a ``fit`` run.

    Parameters
    ----------
    out_path : str
        JSON file written when training ends.
    batch_size : int
        Samples per step (for samples per second).
    warmup_steps : int
        Steps excluded from the measurement (worker start-up, cuDNN autotuning, first
        cache fills).
    nvml_interval_s : float
        Sampling period of the GPU utilisation on CUDA.
    """

    def __init__(
        self,
        out_path: str,
        batch_size: int,
        warmup_steps: int = 5,
        nvml_interval_s: float = 0.05,
    ) -> None:
        super().__init__()
        self.out_path = str(out_path)
        self.batch_size = int(batch_size)
        self.warmup_steps = int(warmup_steps)
        self.nvml_interval_s = float(nvml_interval_s)
        self._fetch_start: float | None = None
        self._fetches: list[tuple[float, float]] = []
        self._steps = 0
        self._window_start: float | None = None
        self._window_end: float | None = None
        self._cuda = False
        self._sampler: _NvmlSampler | None = None
        self._sampler_error: str | None = None

    def setup(self, stage: str, local_rank: int | None = None, log_dir: str | None = None) -> None:
        super().setup(stage, local_rank, log_dir)
        import torch

        self._cuda = torch.cuda.is_available()
        if self._cuda and self._sampler is None:
            try:
                self._sampler = _NvmlSampler(torch.cuda.current_device(), self.nvml_interval_s)
            except Exception as err:  # no NVML: still report the rest, and say why
                self._sampler_error = f"{type(err).__name__}: {err}"

    def _sync(self) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize()

    def start(self, action_name: str) -> None:
        if action_name.endswith(_FETCH):
            if self._steps == self.warmup_steps and self._window_start is None:
                self._sync()
                self._window_start = time.perf_counter()
            self._fetch_start = time.perf_counter()

    def stop(self, action_name: str) -> None:
        now = time.perf_counter()
        if action_name.endswith(_FETCH) and self._fetch_start is not None:
            if self._window_start is not None and self._window_end is None:
                self._fetches.append((self._fetch_start, now))
            self._fetch_start = None
        elif action_name == _STEP:
            self._steps += 1
            if self._window_start is not None:
                self._sync()
                self._window_end = time.perf_counter()  # moves with every measured step

    def result(self) -> dict[str, Any]:
        """The measurements so far."""
        out: dict[str, Any] = {"steps": self._steps, "warmup_steps": self.warmup_steps}
        if self._window_start is None or self._window_end is None:
            out["error"] = "no step after the warmup was timed"
            return out
        window = self._window_end - self._window_start
        measured = self._steps - self.warmup_steps
        wait = sum(stop - start for start, stop in self._fetches)
        out.update(
            {
                "measured_steps": measured,
                "seconds": round(window, 3),
                "samples_per_s": round(measured * self.batch_size / window, 2),
                "step_ms": round(1000 * window / measured, 2),
                "data_wait_fraction": round(wait / window, 4),
                "data_wait_ms_per_step": round(1000 * wait / measured, 2),
                "cuda": self._cuda,
            }
        )
        if self._sampler is not None:
            samples = [
                s for s in self._sampler.samples if self._window_start <= s[0] <= self._window_end
            ]
            if samples:
                out["gpu"] = self._sampler.name
                out["gpu_utilization_mean_pct"] = round(
                    sum(s[1] for s in samples) / len(samples), 1
                )
                out["gpu_utilization_samples"] = len(samples)
                out["gpu_memory_used_max_gib"] = round(max(s[2] for s in samples) / 1024**3, 2)
        elif self._sampler_error:
            out["nvml_error"] = self._sampler_error
        return out

    def teardown(self, stage: str | None) -> None:
        if stage in (None, "fit") and self._steps:
            Path(self.out_path).write_text(json.dumps(self.result(), indent=2))
        if self._sampler is not None and stage in (None, "fit"):
            self._sampler.close()
            self._sampler = None
        super().teardown(stage)

    def summary(self) -> str:
        return json.dumps(self.result())
