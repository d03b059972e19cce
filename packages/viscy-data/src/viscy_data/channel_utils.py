"""Channel names of OME-Zarr plates: what kind of channel a label names.

:func:`parse_channel_name` reads the conventions of acquisition and virtual-staining
pipelines (``"Phase3D"``, ``"raw GFP EX488 EM525-45"``, ``"nuclei_prediction"``) into a small
dictionary, e.g. to pick label-free inputs and fluorescence targets from a plate's channels.
"""

from __future__ import annotations

import re

__all__ = ["parse_channel_name"]

_VIRTUAL_WORDS = ("prediction", "virtual")
_LABELFREE_WORDS = ("phase", "brightfield", "retardance")
# "BF" as its own token ("BF", "raw BF", "BF_x"), not inside a word ("BFP")
_BF = re.compile(r"(?<![a-z0-9])bf(?![a-z0-9])")
_DIC = re.compile(r"\bdic\b")
# "raw <filter cube> EX<nm> EM<nm>[-bandwidth]"
_RAW_FILTER = re.compile(r"^raw\s+(\w+)\s+ex(\d+)\s+em(\d+)", re.IGNORECASE)
_EX_EM = re.compile(r"ex(\d+)\s*em(\d+)", re.IGNORECASE)


def parse_channel_name(name: str) -> dict:
    """What a channel label (``omero.channels[].label``) says about the channel.

    Parameters
    ----------
    name : str
        Channel label, e.g. ``"Phase3D"``, ``"raw GFP EX488 EM525-45"``,
        ``"nuclei_prediction"``.

    Returns
    -------
    dict
        ``channel_type``: ``"virtual_stain"`` (the label contains ``prediction`` or
        ``virtual``), ``"fluorescence"`` (it has ``EX<nm> EM<nm>``), ``"labelfree"`` (phase,
        brightfield, BF, DIC, retardance) or ``"unknown"``, checked in this order (case is
        ignored). Fluorescence labels add ``excitation_nm`` and ``emission_nm`` (int), and
        ``filter_cube`` when the label reads ``raw <cube> EX<nm> EM<nm>``.

    Raises
    ------
    AttributeError
        If ``name`` is not a string (as in 0.1.0).

    Examples
    --------
    >>> parse_channel_name("raw GFP EX488 EM525-45")
    {'channel_type': 'fluorescence', 'filter_cube': 'GFP', 'excitation_nm': 488, 'emission_nm': 525}
    >>> parse_channel_name("Phase3D")
    {'channel_type': 'labelfree'}
    """
    lower = name.lower()
    if any(word in lower for word in _VIRTUAL_WORDS):
        return {"channel_type": "virtual_stain"}
    raw = _RAW_FILTER.search(name)
    if raw is not None:
        return {
            "channel_type": "fluorescence",
            "filter_cube": raw.group(1),
            "excitation_nm": int(raw.group(2)),
            "emission_nm": int(raw.group(3)),
        }
    ex_em = _EX_EM.search(name)
    if ex_em is not None:
        return {
            "channel_type": "fluorescence",
            "excitation_nm": int(ex_em.group(1)),
            "emission_nm": int(ex_em.group(2)),
        }
    if any(word in lower for word in _LABELFREE_WORDS) or _BF.search(lower) or _DIC.search(lower):
        return {"channel_type": "labelfree"}
    return {"channel_type": "unknown"}
