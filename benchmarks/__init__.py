"""Benchmarks of the toolkit; each prints one JSON object.

* ``python -m benchmarks.loaders {hcs,triplet,multi}``: training loaders against raw
  tensorstore reads of the same boxes (:mod:`benchmarks.loaders`).
* ``python -m benchmarks.transforms``: batched augmentations against MONAI per sample.
* ``python -m benchmarks.models``: forward + backward time of every architecture.
* ``python -m benchmarks.sampler``: multi-experiment indexing and batch sampling.

Shared timing, machine description and the raw read limit: :mod:`benchmarks.common`.
Speed is reported as ratios to a limit measured in the same run, never as absolute targets.
"""
