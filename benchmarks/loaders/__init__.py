"""Loader benchmarks: each training DataLoader against raw tensorstore reads of its boxes.

``uv run python -m benchmarks.loaders NAME [options]`` prints one JSON object. Each subcommand is a module here with ``add_arguments(parser)`` and
``run(args) -> dict`` (and a function of the same name as the module for use from Python);
the raw baseline and ``machine()`` are in :mod:`benchmarks.common`.

* ``hcs``: :class:`viscy_data.HCSDataModule` training loader.
* ``triplet``: :class:`viscy_data.TripletDataModule` training loader.
* ``multi``: dynaclr's ``MultiExperimentDataModule`` training loader.
* ``layout``: cold-cache random-patch reads, ``viscy rechunk`` copy against the original.
* ``setup``: ``setup("fit")`` time of the HCS, triplet and multi-experiment DataModules.
* ``hcs_release``: HCSDataModule training throughput against the 0.1.0 release.
"""

#: Subcommand -> module of this package.
BENCHMARKS = {
    "hcs": "hcs",
    "triplet": "triplet",
    "multi": "multi",
    "layout": "layout",
    "setup": "setup",
    "hcs_release": "hcs_release",
}
