"""Rendering of simulated cells into pixels, one renderer per channel kind.

A frame is noise plus a per-kind floor everywhere; each cell is then added only inside a
window around it, which keeps a 1024 x 1024 frame cheap. A channel's kind comes from its name
(:func:`channel_kinds`); what a kind looks like is a :class:`ChannelKind` in
:data:`CHANNEL_KINDS`. To add a kind (e.g. a fluorescence target predicted from label-free
images), write its two functions and add one entry there; to add a phenotype, give
:class:`CellWindow` what the renderers need to draw it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

Z_SIGMA = 1.5  # slices: how fast a cell fades away from its focal slice


@dataclass(frozen=True)
class CellWindow:
    """One cell at one timepoint, as seen inside the window it is drawn into.

    Attributes
    ----------
    body : numpy.ndarray
        ``(h, w)`` float32 flat-topped profile of the cell body, 1 inside, 0 far outside.
    r2 : numpy.ndarray
        ``(h, w)`` float32 squared elliptical radius; 1 on the cell's outline.
    infected : bool
        Whether the cell shows the infection phenotype at this timepoint.
    phenotype : str
        The plate's infection phenotype (a key of :data:`PHENOTYPES`).
    reporter_level : float
        The cell's reporter expression (a lineage keeps it for life); 1 for ``"reporter"``.
    nucleus : numpy.ndarray, optional
        ``(h, w)`` flat-topped profile of an off-centre nucleus (``"translocation"``).
    focus : numpy.ndarray, optional
        ``(h, w)`` profile of the reporter's focus, the same shape and size as the nucleus:
        on the nucleus once infected, elsewhere in the cell before (``"translocation"``).
    labelfree_level : float
        Per-frame brightness factor of the label-free body (``"translocation"``; 1 otherwise).
    """

    body: np.ndarray
    r2: np.ndarray
    infected: bool
    phenotype: str = "reporter"
    reporter_level: float = 1.0
    nucleus: np.ndarray | None = None
    focus: np.ndarray | None = None
    labelfree_level: float = 1.0


#: Infection phenotypes. ``"reporter"``: infected cells gain a bright reporter at their
#: centre and elongate strongly (readable from mean brightness alone). ``"relocalization"``:
#: every cell expresses the reporter at a level that varies several-fold between lineages;
#: infection moves most of it from the cytoplasm into the nucleus at the same total
#: intensity, and changes the shape only slightly (less than cells differ from each other).
#: Each frame redraws every cell's reporter brightness and the fluorescent debris around it
#: (and, with the private ``_RELOCALIZATION_*_SIGMA`` knobs, its size and label-free
#: brightness; off by default: in the demo they hurt the trained encoder more).
#: ``"translocation"``: every cell has an off-centre nucleus (darker in label-free images) and
#: a reporter focus of the nucleus's shape and size; before infection the focus sits at a
#: random place in the cell, drawn anew each frame; infection moves it onto the nucleus. The
#: fluorescence image alone is distributed alike in both states (same total, same profile,
#: same distance from the cell centre); only where the focus sits relative to the nucleus of
#: the label-free channel tells infection. Brightness, size, focus position and background
#: vary strongly from frame to frame, as the training augmentations do.
#: ``"relocalization_defocus"``: ``"relocalization"`` with a weaker relocalization (70 % of
#: the reporter in the nucleus of an infected cell), more debris, and a per-frame defocus that
#: inverts a cell's label-free contrast (darker than the background) in half of the frames.
#: The inversion and the debris change from one frame to the next while infection stays: an
#: encoder trained with temporal positives and an inverting augmentation learns to ignore
#: them, a random one is dominated by them (``dynaclr demo``'s phenotype).
PHENOTYPES = ("reporter", "relocalization", "translocation", "relocalization_defocus")
#: Phenotypes drawn by the relocalization renderer.
_RELOCALIZATION_PHENOTYPES = ("relocalization", "relocalization_defocus")

_NUCLEUS_R2 = 0.12  # nuclear profile exp(-r2 / (2 * this)): sigma ~ 0.35 cell radii
_RELOCALIZED_FRACTION = 0.85  # of the reporter in the nucleus of an infected cell
_RELOCALIZED_FRACTIONS = {"relocalization": _RELOCALIZED_FRACTION, "relocalization_defocus": 0.7}
_DEBRIS_PER_CELLS = {"relocalization_defocus": 3.0}  # other phenotypes: _DEBRIS_PER_CELL
_DEFOCUS_INVERSION_PROB = 0.5  # "relocalization_defocus": per cell and frame
_INVERTED_LABELFREE_LEVEL = -0.5  # label-free body brightness factor of an inverted frame
_RELOCALIZATION_ELONGATION = (1.06, 0.95)  # (long, short) axis factors when infected
_FLICKER_SIGMA = 0.3  # per-frame log-normal jitter of each cell's reporter brightness
_RELOCALIZATION_SIZE_SIGMA = 0.0  # per-frame log-normal jitter of the cell's size (0: none)
_RELOCALIZATION_LABELFREE_SIGMA = 0.0  # same, of its label-free brightness (0: none)
_DEBRIS_PER_CELL = 2.0  # fluorescent debris blobs per cell and frame, placed anew each frame
# "translocation"
_FOCUS_FRACTIONS = (0.5, 0.5)  # of the reporter in the focus (uninfected, infected)
_NUCLEUS_DARKNESS = 800.0  # label-free: the nucleus is this much darker than the body
_FOCUS_RADIUS = 0.38  # nucleus and focus radius, in cell radii
_FOCUS_OFFSET = (0.15, 0.45)  # distance of nucleus and focus from the cell centre, cell radii
_TRANSLOCATION_SIGMAS = {  # per-frame log-normal jitters
    "reporter": 0.4,  # reporter brightness
    "labelfree": 0.25,  # label-free body brightness
    "radius": 0.12,  # cell size
    "position": 0.05,  # nucleus and focus centres (cell radii, normal)
}


def _add_debris(
    plane: np.ndarray,
    n_cells: int,
    rng: np.random.Generator,
    scale: float = 1.0,
    per_cell: float = _DEBRIS_PER_CELL,
) -> None:
    """Bright blobs of random size at random places, new each frame (``"relocalization"``).

    They look like reporter puncta to an encoder that has not learnt which structures follow
    a cell over time.
    """
    depth, height, width = plane.shape
    n = rng.poisson(per_cell * max(n_cells, 1))
    for _ in range(n):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        sigma = rng.uniform(1.0, 3.5)
        peak = scale * rng.lognormal(np.log(900.0), 0.5)
        half = int(np.ceil(3 * sigma))
        y0, y1 = max(0, int(cy) - half), min(height, int(cy) + half + 1)
        x0, x1 = max(0, int(cx) - half), min(width, int(cx) + half + 1)
        yy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        xx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        blob = np.exp(-(yy * yy + xx * xx) / np.float32(2 * sigma * sigma)) * np.float32(peak)
        plane[:, y0:y1, x0:x1] += blob[None]


@dataclass(frozen=True)
class ChannelKind:
    """How one kind of channel is rendered.

    Attributes
    ----------
    name : str
        Kind name, e.g. ``"labelfree"``.
    keywords : tuple of str
        Lower-case substrings of a channel name that select this kind.
    fill_floor : callable
        ``fill_floor(plane, background)``: turn ``plane`` (``(Z, Y, X)`` float32 standard
        normal noise) into the empty frame, in place; ``background`` is the FOV's ``(Y, X)``
        illumination field.
    cell_signal : callable
        ``cell_signal(cell) -> (h, w) array``: intensity a :class:`CellWindow` adds at its
        focal slice (fainter away from it).
    """

    name: str
    keywords: tuple[str, ...]
    fill_floor: Callable[[np.ndarray, np.ndarray], None]
    cell_signal: Callable[[CellWindow], np.ndarray]


def _labelfree_floor(plane: np.ndarray, background: np.ndarray) -> None:
    plane *= 40.0
    plane += background


def _labelfree_cell(cell: CellWindow) -> np.ndarray:
    if cell.nucleus is not None:  # "translocation": an off-centre, darker nucleus
        return cell.labelfree_level * (1500.0 * cell.body - _NUCLEUS_DARKNESS * cell.nucleus)
    return (1500.0 * cell.labelfree_level) * cell.body  # bright bodies on a smooth background


def _fluorescence_floor(plane: np.ndarray, background: np.ndarray) -> None:
    plane *= 20.0
    plane += 100.0


def _fluorescence_cell(cell: CellWindow) -> np.ndarray:
    if cell.phenotype in _RELOCALIZATION_PHENOTYPES:
        return _relocalized_reporter(cell)
    if cell.focus is not None:
        return _translocated_reporter(cell)
    signal = 150.0 * cell.body
    if cell.infected:  # a bright reporter in the cell's center
        signal = signal + 2500.0 * np.exp(-2.0 * cell.r2)
    return signal


def _relocalized_reporter(cell: CellWindow) -> np.ndarray:
    """Reporter in the cytoplasm, or mostly in the nucleus once infected, at one total."""
    nucleus = np.exp(-cell.r2 / np.float32(2 * _NUCLEUS_R2))
    cytoplasm = cell.body * (1.0 - nucleus)
    fraction = _RELOCALIZED_FRACTIONS[cell.phenotype] if cell.infected else 0.0
    total = np.float32(cell.reporter_level * 500.0) * cell.body.sum()
    profile = (1.0 - fraction) * cytoplasm / max(float(cytoplasm.sum()), 1e-6)
    profile = profile + fraction * nucleus / max(float(nucleus.sum()), 1e-6)
    return (60.0 * cell.body + total * profile).astype(np.float32)


def _translocated_reporter(cell: CellWindow) -> np.ndarray:
    """Diffuse reporter in the whole cell plus a focus holding a fixed share of the total."""
    total = np.float32(cell.reporter_level * 500.0) * cell.body.sum()
    fraction = _FOCUS_FRACTIONS[int(cell.infected)]
    diffuse = (1.0 - fraction) * cell.body / max(float(cell.body.sum()), 1e-6)
    focus = fraction * cell.focus / max(float(cell.focus.sum()), 1e-6)
    return (total * (diffuse + focus)).astype(np.float32)


def _nucleus_profile(cell: CellWindow) -> np.ndarray:
    """Flat-topped nucleus in the cell's centre, about half the cell's radius."""
    rn2 = cell.r2 * np.float32(1.0 / 0.3)
    return np.exp(-(rn2 * rn2))


def _labelfree_nucleus_cell(cell: CellWindow) -> np.ndarray:
    # the optically denser-looking body with a darker nucleus: the nucleus is visible, so a
    # network can learn it, but the image is not the nucleus channel
    return 1500.0 * cell.body - 900.0 * _nucleus_profile(cell)


def _nucleus_cell(cell: CellWindow) -> np.ndarray:
    return 1200.0 * _nucleus_profile(cell)


def _membrane_cell(cell: CellWindow) -> np.ndarray:
    ring = (cell.r2 - np.float32(1.0)) * np.float32(1.0 / 0.3)
    return 1000.0 * np.exp(-(ring * ring))  # a thin bright outline of the body


#: Every channel kind, by name. A channel takes the first kind whose keywords its name
#: contains; names that match none are :data:`DEFAULT_KIND`.
CHANNEL_KINDS: dict[str, ChannelKind] = {
    "labelfree": ChannelKind(
        name="labelfree",
        keywords=("phase", "bf", "bright", "dic", "retardance"),
        fill_floor=_labelfree_floor,
        cell_signal=_labelfree_cell,
    ),
    "fluorescence": ChannelKind(
        name="fluorescence",
        keywords=(),
        fill_floor=_fluorescence_floor,
        cell_signal=_fluorescence_cell,
    ),
}
# Virtual staining kinds (chosen explicitly with write_synthetic_plate(channel_kinds=...),
# never from a channel name): a label-free image showing nuclei, and nucleus and membrane
# fluorescence targets rendered from the same cells.
CHANNEL_KINDS["labelfree_nucleus"] = ChannelKind(
    name="labelfree_nucleus",
    keywords=(),
    fill_floor=_labelfree_floor,
    cell_signal=_labelfree_nucleus_cell,
)
CHANNEL_KINDS["nucleus"] = ChannelKind(
    name="nucleus", keywords=(), fill_floor=_fluorescence_floor, cell_signal=_nucleus_cell
)
CHANNEL_KINDS["membrane"] = ChannelKind(
    name="membrane", keywords=(), fill_floor=_fluorescence_floor, cell_signal=_membrane_cell
)
DEFAULT_KIND = "fluorescence"


def channel_kinds(channel_names: Sequence[str]) -> list[str]:
    """Kind of each channel: names like Phase3D, BF, DIC or Retardance are label-free."""
    kinds = []
    for name in channel_names:
        lower = name.lower()
        match = [k.name for k in CHANNEL_KINDS.values() if any(w in lower for w in k.keywords)]
        kinds.append(match[0] if match else DEFAULT_KIND)
    return kinds


def background_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth ``(Y, X)`` float32 illumination field of one FOV, around 1000."""
    yy = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    phase, tilt = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
    background = 1000.0 + 150.0 * np.sin(tilt * 3 * yy + phase) * np.cos(tilt * 2 * xx)
    return background.astype(np.float32)


def render_timepoint(
    cells: pd.DataFrame,
    onsets: dict[int, int],
    t: int,
    shape_czyx: tuple[int, int, int, int],
    kinds: Sequence[str],
    background: np.ndarray,
    rng: np.random.Generator,
    phenotype: str = "reporter",
    reporter_levels: dict[int, float] | None = None,
    compartments: dict[int, tuple[tuple[float, float], ...]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one timepoint as float32 ``(C, Z, Y, X)`` plus a ``(Z, Y, X)`` foreground mask.

    Parameters
    ----------
    cells : pandas.DataFrame
        The rows of :func:`~viscy_data.synthetic.simulate_tracks` at timepoint ``t``.
    onsets : dict
        Track id to first infected timepoint (-1 never).
    t : int
        Timepoint.
    shape_czyx : tuple of int
        Frame shape.
    kinds : sequence of str
        Kind of each channel (keys of :data:`CHANNEL_KINDS`).
    background : numpy.ndarray
        The FOV's ``(Y, X)`` illumination field.
    rng : numpy.random.Generator
        Source of the noise.
    phenotype : str
        Infection phenotype, one of :data:`PHENOTYPES`.
    reporter_levels : dict, optional
        Track id to reporter expression (``"relocalization"``, ``"translocation"``; 1 when
        missing).
    compartments : dict, optional
        Track id to the centres of its nucleus and its cytoplasmic reporter focus
        (:func:`random_compartments`; ``"translocation"``; drawn per frame when missing).
    """
    n_channels, depth, height, width = shape_czyx
    renderers = [CHANNEL_KINDS[kind] for kind in kinds]
    image = np.empty(shape_czyx, dtype=np.float32)
    for c, renderer in enumerate(renderers):
        rng.standard_normal(out=image[c], dtype=np.float32)
        renderer.fill_floor(image[c], background)
    mask = np.zeros((depth, height, width), dtype=bool)
    z_index = np.arange(depth, dtype=np.float32)
    translocation = phenotype == "translocation"
    relocalization = phenotype in _RELOCALIZATION_PHENOTYPES
    for row in cells.itertuples(index=False):
        infected = 0 <= onsets[row.track_id] <= t
        if translocation:  # no shape change; the size varies from frame to frame
            long = short = float(rng.lognormal(0.0, _TRANSLOCATION_SIGMAS["radius"]))
        elif phenotype == "reporter":
            long, short = (1.6, 0.75) if infected else (1.0, 1.0)
        else:
            long, short = _RELOCALIZATION_ELONGATION if infected else (1.0, 1.0)
            if _RELOCALIZATION_SIZE_SIGMA > 0:  # this frame's size
                size = float(rng.lognormal(0.0, _RELOCALIZATION_SIZE_SIGMA))
                long, short = long * size, short * size
        a = row.radius * long  # infected cells elongate
        b = row.radius * short
        half = int(np.ceil(2.0 * a))
        cy, cx = row.y, row.x
        y0, y1 = max(0, int(cy) - half), min(height, int(cy) + half + 1)
        x0, x1 = max(0, int(cx) - half), min(width, int(cx) + half + 1)
        yy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        xx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        cos, sin = np.float32(np.cos(row.angle)), np.float32(np.sin(row.angle))
        u = (yy * cos + xx * sin) / np.float32(a)
        v = (-yy * sin + xx * cos) / np.float32(b)
        r2 = u * u + v * v
        level = 1.0 if reporter_levels is None else reporter_levels.get(row.track_id, 1.0)
        if relocalization:
            level *= float(rng.lognormal(0.0, _FLICKER_SIGMA))
        if translocation:
            cell = _translocation_window(
                u, v, r2, infected, level, (compartments or {}).get(row.track_id), rng
            )
        else:
            labelfree = 1.0
            if relocalization and _RELOCALIZATION_LABELFREE_SIGMA > 0:
                labelfree = float(rng.lognormal(0.0, _RELOCALIZATION_LABELFREE_SIGMA))
            if phenotype == "relocalization_defocus" and rng.random() < _DEFOCUS_INVERSION_PROB:
                labelfree *= _INVERTED_LABELFREE_LEVEL  # defocus: a dark cell on the background
            cell = CellWindow(
                np.exp(-(r2 * r2)), r2, infected, phenotype, level, labelfree_level=labelfree
            )
        # each cell is sharp at its own focal slice and fainter away from it
        focus = np.exp(-((z_index - np.float32(row.z)) ** 2) / np.float32(2 * Z_SIGMA**2))
        weight = (0.35 + 0.65 * focus)[:, None, None]
        for c, renderer in enumerate(renderers):
            image[c, :, y0:y1, x0:x1] += weight * renderer.cell_signal(cell)
        mask[:, y0:y1, x0:x1] |= (r2 <= 1.0)[None] & (focus > 0.1)[:, None, None]
    if relocalization or translocation:
        per_cell = _DEBRIS_PER_CELLS.get(phenotype, _DEBRIS_PER_CELL)
        for c, renderer in enumerate(renderers):
            if renderer.name == "fluorescence":
                _add_debris(image[c], len(cells), rng, per_cell=per_cell)
    return image, mask


def random_compartments(rng: np.random.Generator) -> tuple[tuple[float, float], ...]:
    """Centres of a cell's nucleus and of its cytoplasmic reporter focus (``"translocation"``).

    Both lie at a random distance in :data:`_FOCUS_OFFSET` from the cell centre (in cell
    radii, along the cell's axes), at random angles at least 0.6 rad apart, so that the
    focus is never on the nucleus before infection.
    """
    angle = rng.uniform(0.0, 2 * np.pi)
    centres = []
    for a in (angle, angle + rng.uniform(0.6, 2 * np.pi - 0.6)):
        distance = rng.uniform(*_FOCUS_OFFSET)
        centres.append((distance * float(np.cos(a)), distance * float(np.sin(a))))
    return tuple(centres)


def _disc(u: np.ndarray, v: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """Flat-topped disc of radius :data:`_FOCUS_RADIUS` (cell radii) around ``centre``."""
    du, dv = u - np.float32(centre[0]), v - np.float32(centre[1])
    d2 = (du * du + dv * dv) * np.float32(1.0 / _FOCUS_RADIUS**2)
    return np.exp(-(d2 * d2))


def _translocation_window(
    u: np.ndarray,
    v: np.ndarray,
    r2: np.ndarray,
    infected: bool,
    level: float,
    compartments: tuple[tuple[float, float], ...] | None,
    rng: np.random.Generator,
) -> CellWindow:
    """A cell of the ``"translocation"`` phenotype, with this frame's random nuisances."""
    nucleus_at, focus_at = compartments if compartments is not None else random_compartments(rng)
    jitter = rng.normal(0.0, _TRANSLOCATION_SIGMAS["position"], size=4)
    nucleus_at = (nucleus_at[0] + jitter[0], nucleus_at[1] + jitter[1])
    focus_at = nucleus_at if infected else (focus_at[0] + jitter[2], focus_at[1] + jitter[3])
    return CellWindow(
        body=np.exp(-(r2 * r2)),
        r2=r2,
        infected=infected,
        phenotype="translocation",
        reporter_level=level * float(rng.lognormal(0.0, _TRANSLOCATION_SIGMAS["reporter"])),
        nucleus=_disc(u, v, nucleus_at),
        focus=_disc(u, v, focus_at),
        labelfree_level=float(rng.lognormal(0.0, _TRANSLOCATION_SIGMAS["labelfree"])),
    )


def to_dtype(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert in place where possible: round half up, clip to the integer range."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        image += 0.5
        np.clip(image, info.min, info.max, out=image)
        return np.floor(image, out=image).astype(dtype)
    return image.astype(dtype, copy=False)
