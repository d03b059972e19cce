"""Filter-count helper shared by the classic U-Nets."""

from __future__ import annotations

from collections.abc import Sequence


def resolve_filters(num_filters: Sequence[int], num_blocks: int) -> list[int]:
    """Filters of the ``num_blocks`` down blocks plus the bottom block.

    An empty sequence means ``16, 32, 64, ...`` (doubling from 16).
    """
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be >= 1, got {num_blocks}.")
    if len(num_filters) == 0:
        return [16 * 2**i for i in range(num_blocks + 1)]
    if len(num_filters) != num_blocks + 1:
        raise ValueError(
            f"num_filters has {len(num_filters)} entries; it needs num_blocks + 1 = "
            f"{num_blocks + 1} (one per down block plus the bottom), or () for the default."
        )
    return [int(f) for f in num_filters]
