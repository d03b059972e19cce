"""``check --read``: decode chunk files of every FOV to find damaged data before a run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from viscy_utils.check import CheckReport, PlateInfo

_MAX_REPORTED = 20  # damaged files listed per plate; the rest are counted


def read_chunks(plate: PlateInfo, read: int | Literal["all"], report: CheckReport) -> int:
    """Decode ``read`` random chunk files per FOV (``"all"``: every one); returns files read.

    Each damaged file is one error naming the FOV, timepoint, channel and file. The draw is
    seeded, so a rerun reads the same files.
    """
    from viscy_data import PatchBox, PatchReader, PatchReadError

    reader = PatchReader(plate.path, cache_bytes=0)
    rng = np.random.default_rng(0)
    jobs: list[PatchBox] = []
    for fov in plate.fovs:
        info = reader._info(fov)
        grid = info.file_chunks or info.shape
        counts = [-(-s // g) for s, g in zip(info.shape, grid, strict=True)]
        total = int(np.prod(counts))
        if read == "all" or read >= total:
            picks = range(total)
        else:
            picks = sorted(rng.choice(total, size=int(read), replace=False).tolist())
        for flat in picks:
            index = np.unravel_index(int(flat), counts)
            lo = [int(i) * g for i, g in zip(index, grid, strict=True)]
            hi = [min(lo_ + g, s) for lo_, g, s in zip(lo, grid, info.shape, strict=True)]
            # one timepoint of the file (boxes are single-t); other t of it are read below
            for t in range(lo[0], hi[0]):
                jobs.append(
                    PatchBox(
                        fov,
                        t,
                        tuple(range(lo[1], hi[1])),
                        (lo[2], hi[2]),
                        (lo[3], hi[3]),
                        (lo[4], hi[4]),
                    )
                )
    iterator = jobs
    if read == "all":
        from tqdm.auto import tqdm

        iterator = tqdm(jobs, desc=f"reading {plate.path.name}", unit="box")
    damaged = 0
    for box in iterator:
        try:
            reader.read_patch(box)
        except PatchReadError as err:
            damaged += 1
            if damaged <= _MAX_REPORTED:
                report.error(
                    "damaged chunk",
                    f"{plate.path} FOV {box.position} t={box.t}",
                    str(err),
                    "restore the file from a copy, or rewrite that FOV",
                )
    if damaged > _MAX_REPORTED:
        report.error(
            "more damaged chunks",
            str(plate.path),
            f"{damaged - _MAX_REPORTED} more not listed",
            "fix the listed ones and run the check again",
        )
    reader.close()
    return len(jobs)
